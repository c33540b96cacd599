"""python -m eval.report RUN_DIR... --out DIR: one Markdown and one self-contained HTML report.

Tables of every metric, the plots (embedded in the HTML), the environment, the worst
utterances, and the exact command lines to reproduce each run. Dataset text is escaped: a
transcript cannot inject markup into the page.
"""

from __future__ import annotations

import base64
import html
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import dsmlab

from . import rundir, runner
from .records import read_records
from .results import read_results
from .turn_streams import best_per_detector


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
        rundir.prepare(args.out)
        (args.out / "report.md").write_text(markdown(runs, sections, args.worst))
        (args.out / "report.html").write_text(html_page(runs, sections, args.worst))
        print(f"{args.out / 'report.md'}\n{args.out / 'report.html'}")
        return 0

    return runner.main_guard(body, args)


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


def load_sweep(sweep_dir: Path) -> list[Section]:
    """The sweep's table, and its paired differences (between delays, and between models at one
    delay)."""
    sweep = _read(sweep_dir / "sweep.json")
    try:
        rows, command = list(sweep["rows"]), sweep["command_line"]
        differences = list(sweep.get("differences", []))
    except (KeyError, TypeError):
        raise _corrupt(sweep_dir / "sweep.json") from None
    sections = [Section("Delay sweep", *_table(rows), command, sorted(sweep_dir.glob("*.png")))]
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
        if (d / "sweep.json").is_file() and children:
            expanded += children
        elif not (d / "turns.json").is_file():  # an end-of-turn run is a section, not a run
            expanded.append(d)
    return expanded


def _rows(run: dict) -> list[tuple[str, str]]:
    r = run["results"]
    rows = [
        ("model", r["model"]["model"]),
        ("delay (s)", r["model"]["delay_s"]),
        ("dataset", f"{r['data']['dataset']} / {r['data']['config']} / {r['data']['split']}"),
    ]
    definitions = r.get("definitions") or {}
    if definitions:
        protocol = definitions["protocol"]
        rows += [
            ("protocol", f"{protocol['name']}: {protocol['batching']}; {protocol['trailing']}"),
            ("normalizer", f"{definitions['normalizer']} ({definitions['alignment']})"),
        ]
    rows += [(k, v) for k, v in r["metrics"].items()]
    failures = r.get("failures") or {"count": 0, "first": []}
    rows += [("failed rows", failures["count"])]
    rows += [(f"failed: {f['id']}", f["error"]) for f in failures["first"]]
    rows += [("RTFx", r["speed"]["rtfx"]), ("speed", r["speed"].get("definition"))]
    rows += [("device", r["environment"]["device_name"])]
    return [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in rows]


def _worst(run: dict, n: int) -> list[dict]:
    ok = [r for r in run["records"] if r["status"] == "ok"]
    return sorted(ok, key=lambda r: -r["wer"])[:n]


def markdown(runs: list[dict], sections: list[Section], worst: int) -> str:
    def cell(text) -> str:
        return html.escape(str(text)).replace("|", "\\|").replace("\n", " ")

    lines = ["# dsmlab evaluation report", ""]
    for section in sections:
        lines += [
            f"## {cell(section.title)}",
            "",
            "| " + " | ".join(map(cell, section.header)) + " |",
            "|" + " --- |" * len(section.header),
        ]
        lines += ["| " + " | ".join(map(cell, row)) + " |" for row in section.body]
        if section.command:
            lines += ["", "```bash", section.command, "```"]
        lines += [""] + [f"![{p.name}]({p.resolve()})" for p in section.plots] + [""]
    for run in runs:
        r = run["results"]
        lines += [
            f"## {cell(r['model']['model'])} on {cell(r['data']['dataset'])}",
            "",
            "| metric | value |",
            "| --- | --- |",
        ]
        lines += [f"| {cell(k)} | {cell(v)} |" for k, v in _rows(run)]
        lines += ["", "Reproduce:", "", "```bash", r["command_line"], "```", ""]
        lines += [f"![{p.name}]({p.resolve()})" for p in run["plots"]] + [""]
        lines += [
            "Worst utterances:",
            "",
            "| id | WER | reference | hypothesis |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {cell(u['id'])} | {u['wer']:.2f} | {cell(u['reference'])} | "
            f"{cell(u['hypothesis'])} |"
            for u in _worst(run, worst)
        ]
        env = r["environment"]
        lines += [
            "",
            f"Environment: {cell(env['device'])} ({cell(env['device_name'])}), "
            f"git {cell(env['git_commit'])}, "
            + ", ".join(f"{k} {v}" for k, v in env["packages"].items()),
            "",
        ]
    return "\n".join(lines)


def html_page(runs: list[dict], sections: list[Section], worst: int) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dsmlab report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}</style></head><body><h1>dsmlab evaluation report</h1>",
    ]
    for section in sections:
        parts.append(
            f"<h2>{e(section.title)}</h2><table><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in section.header)
            + "</tr>"
            + "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in section.body
            )
            + "</table>"
        )
        if section.command:
            parts.append(f"<pre>{e(section.command)}</pre>")
        parts += [_img(p) for p in section.plots]
    for run in runs:
        r = run["results"]
        parts.append(f"<h2>{e(str(r['model']['model']))} on {e(str(r['data']['dataset']))}</h2>")
        parts.append(
            "<table>"
            + "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in _rows(run))
            + "</table>"
        )
        parts.append(f"<p>Reproduce:</p><pre>{e(r['command_line'])}</pre>")
        parts += [_img(p) for p in run["plots"]]
        parts.append(
            "<h3>Worst utterances</h3><table><tr><th>id</th><th>WER</th>"
            "<th>reference</th><th>hypothesis</th></tr>"
        )
        parts += [
            f"<tr><td>{e(str(u['id']))}</td><td>{u['wer']:.2f}</td>"
            f"<td>{e(u['reference'])}</td><td>{e(u['hypothesis'])}</td></tr>"
            for u in _worst(run, worst)
        ]
        env = r["environment"]
        parts.append(f"</table><p>Environment: {e(json.dumps(env))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<img alt='{html.escape(path.name)}' src='data:image/png;base64,{data}'>"


if __name__ == "__main__":
    sys.exit(main())
