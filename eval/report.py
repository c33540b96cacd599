"""python -m eval.report RUN_DIR... --out DIR: one Markdown and one self-contained HTML report.

It reads like a results section: the headline table first (WER and CER with their 95%
intervals, speed on the device it ran on, latency and timestamp figures where the runs have
them), then the sweep's and end-of-turn tables, the figures, the details of each run (how it
was scored, the command that reproduces it, the worst utterances), and last, every metric and
the environment as recorded. Definitions: eval/METRICS.md. Dataset text is escaped: a
transcript cannot inject markup into the page.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import dsmlab

from . import rundir, runner, stream_scoring
from .records import read_records
from .render import Block, html_page, markdown
from .results import read_results
from .turn_streams import best_per_detector

METRICS_DOC = "eval/METRICS.md"  # in dsmlab's repository: the definition of every figure


def main(argv: list[str] | None = None) -> int:
    parser = dsmlab.cli.ArgumentParser(prog="python -m eval.report", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (with results.json)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--worst", type=dsmlab.cli.non_negative_int, default=5, help="worst utterances per run"
    )
    args = runner.parse(parser, argv)

    def body() -> int:
        runs = [load_run(d) for d in _expand(args.runs)]
        sections = [s for d in args.runs if (d / "sweep.json").is_file() for s in load_sweep(d)]
        sections += [load_turns(d) for d in args.runs if (d / "turns.json").is_file()]
        sections += [load_longform(d) for d in args.runs if (d / "longform.json").is_file()]
        blocks = document(runs, sections, args.worst)
        rundir.prepare(args.out)
        (args.out / "report.md").write_text(markdown(blocks))
        (args.out / "report.html").write_text(html_page(blocks))
        print(f"{args.out / 'report.md'}\n{args.out / 'report.html'}")
        return 0

    return dsmlab.run_cli(body, debug=args.debug)


def load_run(run_dir: Path) -> dict:
    return {
        "dir": run_dir,
        "results": read_results(run_dir),
        "records": read_records(run_dir),
        "plots": sorted(run_dir.glob("*.png")),
    }


@dataclass
class Section:
    """A table of a sweep or an end-of-turn evaluation, with its command and plots."""

    title: str
    header: list[str]
    body: list[list[str]]
    command: str
    plots: list[Path]
    whole_table_last: bool = False  # the table repeats the headline: it goes to the end


def load_sweep(sweep_dir: Path) -> list[Section]:
    """The sweep's table, and its paired differences (between delays, and between models at one
    delay)."""
    sweep = _read(sweep_dir / "sweep.json")
    try:
        rows, command = list(sweep["rows"]), sweep["command_line"]
        differences = list(sweep.get("differences", []))
    except (KeyError, TypeError):
        raise _corrupt(sweep_dir / "sweep.json") from None
    plots = sorted(sweep_dir.glob("*.png"))
    sections = [Section("Delay sweep", *_table(rows), command, plots, whole_table_last=True)]
    if differences:
        shown = [
            {
                "from": d["from"],
                "to": d["to"],
                "corpus WER difference (points)": f"{100 * d['corpus_wer_difference']:+.2f}",
                "95% CI": f"[{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}]",
                "beyond noise": d["real"],
                "utterances": d["utterances"],
            }
            for d in differences
        ]
        title = "Paired differences (between delays; between models at one delay)"
        sections.append(Section(title, *_table(shown), "", []))
    return sections


def load_turns(turns_dir: Path) -> Section:
    """eval.turns: the best threshold of each detector (by F1)."""
    turns = _read(turns_dir / "turns.json")
    try:
        rows = best_per_detector(turns["rows"])
        title = f"End of turn: {turns['model']} (best threshold per detector)"
        return Section(title, *_table(rows), turns["command_line"], sorted(turns_dir.glob("*.png")))
    except (KeyError, TypeError):
        raise _corrupt(turns_dir / "turns.json") from None


def load_longform(longform_dir: Path) -> Section:
    """eval.longform: per model, the stream's WER against alone, the collapse, memory."""
    found = _read(longform_dir / "longform.json")
    try:
        rows = []
        for m in found["models"]:
            diff = m.get("in_stream_minus_alone") or {}
            memory = [w["rss_mb"] for w in m["resources"] if w.get("rss_mb")]
            rows.append(
                {
                    "model": m["model"],
                    "minutes": f"{m['minutes']:.1f}",
                    "stream WER": _shown(m, "corpus_wer", "percent"),
                    "alone": _shown(m, "alone_corpus_wer", "percent"),
                    "in stream - alone (points)": _difference(diff),
                    "collapse": stream_scoring.collapses(m),
                    "memory first / last window (MB)": f"{memory[0]} / {memory[-1]}"
                    if memory
                    else "",
                }
            )
        plots = sorted(longform_dir.glob("*.png"))
        return Section("Long streams", *_table(rows), found["command_line"], plots)
    except (KeyError, TypeError, IndexError):
        raise _corrupt(longform_dir / "longform.json") from None


def _difference(d: dict) -> str:
    if not d:
        return ""
    low, high = d["ci95"]
    return f"{100 * d['corpus_wer_difference']:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _corrupt(path) from None


def _corrupt(path: Path) -> dsmlab.DSMLabError:
    return dsmlab.DSMLabError(f"{path} is corrupt; rerun the command that wrote it")


def _table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = list(rows[0]) if rows else []
    body = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    return header, body


def _expand(dirs: list[Path]) -> list[Path]:
    """A sweep directory stands for its model runs (and its own plot comes with them)."""
    expanded = []
    for d in dirs:
        children = (
            sorted(c for c in d.iterdir() if (c / "results.json").is_file()) if d.is_dir() else []
        )
        children.sort(key=lambda c: read_results(c)["model"]["delay_s"])  # a sweep's order
        if (d / "sweep.json").is_file() and children:
            expanded += children
        elif not any((d / f).is_file() for f in ("turns.json", "longform.json")):
            # an end-of-turn or long-stream run is a section, not a run
            expanded.append(d)
    return expanded


# --- the document ---

# How a figure is shown: scale, unit, decimals.
UNITS = {"percent": (100, "%", 1), "s": (1, " s", 2), "ms": (1000, " ms", 0)}
# Headline columns a run may have: (title, metric key, unit).
HEADLINE = (
    ("WER [95% CI]", "corpus_wer", "percent"),
    ("CER [95% CI]", "corpus_cer", "percent"),
    ("mean utterance WER", "mean_utterance_wer", "percent"),
    ("median word-start error", "start_abs_median_s", "ms"),
    ("median word latency", "word_latency_median_s", "s"),
    ("AL (mean)", "al_mean_s", "s"),
)


def _title(run: dict) -> str:
    """model on dataset (split); a local dataset by its folder's name, not its whole path."""
    r = run["results"]
    dataset = str(r["data"]["dataset"])
    shown = Path(dataset).name if Path(dataset).is_absolute() else dataset
    return f"{r['model']['model']} on {shown} ({r['data']['split']})"


def _shown(metrics: dict, key: str, kind: str) -> str:
    value, interval = metrics.get(key), metrics.get(f"{key}_ci95")
    if value is None:
        return ""
    scale, unit, digits = UNITS[kind]
    text = f"{scale * value:.{digits}f}{unit}"
    if interval and kind == "percent":
        text += f" [{scale * interval[0]:.{digits}f}, {scale * interval[1]:.{digits}f}]"
    return text


def device_line(results: dict) -> str:
    """Where a run was measured: the device, its name, the LM's dtype and torch's threads."""
    env = results["environment"]
    threads = f"{env['threads']} thread{'s' if env['threads'] != 1 else ''}"
    return f"{env['device']} ({env['device_name']}), {env['dtype']}, {threads}"


def _rtfx(results: dict) -> str:
    rtfx = results["speed"].get("rtfx")
    return f"{rtfx:.1f}" if rtfx else "not measured (nothing computed)"


def headline(runs: list[dict]) -> Block:
    """One row per run: what ran, how many utterances, the error rates with intervals, speed,
    and the latency and timestamp figures of the runs that have them."""
    columns = [c for c in HEADLINE if any(c[1] in r["results"]["metrics"] for r in runs)]
    header = ["run", "delay", "utterances", *[c[0] for c in columns], "RTFx", "device", "failed"]
    rows = []
    for run in runs:
        r = run["results"]
        m = r["metrics"]
        rows.append(
            [
                _title(run),
                f"{r['model']['delay_s']:g} s",
                str(m.get("utterances", "")),
                *[_shown(m, key, kind) for _, key, kind in columns],
                _rtfx(r),
                device_line(r),
                str((r.get("failures") or {}).get("count", 0)),
            ]
        )
    return Block("table", header=header, rows=rows)


def document(runs: list[dict], sections: list[Section], worst: int) -> list[Block]:
    blocks = [Block("h1", "dsmlab evaluation report")]
    if runs:
        blocks += [
            Block("h2", "Results"),
            Block(
                "p",
                "Corpus WER and CER on normalized text, with 95% bootstrap intervals over "
                "utterances; RTFx = audio seconds per compute second, on the device named. "
                f"Every figure is defined in dsmlab's {METRICS_DOC}.",
            ),
            headline(runs),
        ]
    for section in sections:
        blocks.append(Block("h2", section.title))
        if not section.whole_table_last:
            blocks.append(Block("table", header=section.header, rows=section.body))
        if section.command:
            blocks.append(Block("pre", section.command))
        if section.plots:
            blocks.append(Block("img", images=section.plots))
    plotted = [run for run in runs if run["plots"]]
    if plotted:
        blocks.append(Block("h2", "Figures"))
        for run in plotted:
            blocks += [Block("h3", _title(run)), Block("img", images=run["plots"])]
    for run in runs:
        blocks += _details(run, worst)
    blocks.append(Block("h2", "Every recorded figure"))
    for section in sections:
        if section.whole_table_last:
            blocks.append(Block("h3", section.title))
            blocks.append(Block("table", header=section.header, rows=section.body))
    for run in runs:
        r = run["results"]
        rows = [[k, _raw(v)] for k, v in r["metrics"].items()]
        blocks += [Block("h3", _title(run)), Block("table", header=["key", "value"], rows=rows)]
        env = r["environment"]
        packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
        blocks.append(
            Block(
                "p",
                f"Environment: {env['device']} ({env['device_name']}), {env['dtype']}, "
                f"{env['threads']} threads, Python {env.get('python')}, git "
                f"{env['git_commit']}, {packages}; {env.get('platform')}.",
            )
        )
    return blocks


def _details(run: dict, worst: int) -> list[Block]:
    """How one run was scored, how to reproduce it, its failures and its worst utterances."""
    r = run["results"]
    rows = [
        ["model", f"{r['model']['model']} (delay {r['model']['delay_s']:g} s)"],
        ["dataset", f"{r['data']['dataset']} / {r['data']['config']} / {r['data']['split']}"],
    ]
    definitions = r.get("definitions") or {}
    if definitions:
        protocol = definitions["protocol"]
        rows += [
            ["protocol", f"{protocol['name']}: {protocol['batching']}; {protocol['trailing']}"],
            ["normalizer", f"{definitions['normalizer']} ({definitions['alignment']})"],
        ]
    rows += [["speed", f"RTFx {_rtfx(r)}; {r['speed'].get('definition')}"]]
    rows += [["device", device_line(r)]]
    failures = r.get("failures") or {"count": 0, "first": []}
    rows += [[f"failed: {f['id']}", f["error"]] for f in failures["first"]]
    blocks = [
        Block("h2", f"Details: {_title(run)}"),
        Block("table", header=["", ""], rows=rows),
        Block("p", "Reproduce (from the run's working directory):"),
        Block("pre", r["command_line"]),
    ]
    ok = sorted((u for u in run["records"] if u["status"] == "ok"), key=lambda u: -u["wer"])
    if worst and ok:
        shown = [[str(u["id"]), f"{u['wer']:.2f}", u["reference"], u["hypothesis"]] for u in ok]
        blocks += [
            Block("h3", "Worst utterances"),
            Block("table", header=["id", "WER", "reference", "hypothesis"], rows=shown[:worst]),
        ]
    return blocks


def _raw(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
