"""PNG figures for run directories: where people would rather look than read."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import dsmlab
from dsmlab.conversations import FINISHED, HESITATION, UNFINISHED

from .turn_streams import kinds_present


def wer_histogram(records: Sequence[dict], path: Path) -> Path:
    wers = [min(r["wer"], 2.0) for r in records if r["status"] == "ok"]
    fig = _figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.hist(wers, bins=20, range=(0, 2.0), color="tab:blue")
    ax.set_xlabel("utterance WER (capped at 2)")
    ax.set_ylabel("utterances")
    ax.set_title(f"Per-utterance WER ({len(wers)} utterances)")
    return _save(fig, path)


def timestamp_errors(records: Sequence[dict], path: Path) -> Path:
    matches = [m for r in records if r["status"] == "ok" for m in r.get("matches", [])]
    fig = _figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for edge, color in (("start", "tab:blue"), ("end", "tab:orange")):
        errors = [1000 * (m[f"hyp_{edge}"] - m[f"ref_{edge}"]) for m in matches]
        ax.hist(errors, bins=40, range=(-400, 400), alpha=0.6, color=color, label=edge)
    for ms in (-80, 80):
        ax.axvline(ms, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("hypothesis - reference (ms); dotted: one frame")
    ax.set_ylabel("matched words")
    ax.set_title(f"Word timestamp error ({len(matches)} matched words)")
    ax.legend()
    return _save(fig, path)


def latency_cdf(records: Sequence[dict], path: Path, flush: Sequence[float] = ()) -> Path:
    words = sorted(
        m["latency"]
        for r in records
        if r["status"] == "ok"
        for m in r.get("matches", [])
        if m["latency"] is not None
    )
    finals = sorted(
        r["finalization_s"]
        for r in records
        if r["status"] == "ok" and r.get("finalization_s") is not None
    )
    fig = _figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for values, label in (
        (words, "word emission latency"),
        (finals, "finalization, no flush"),
        (sorted(flush), "finalization, flush"),
    ):
        if values:
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=label)
    ax.set_xlabel("seconds")
    ax.set_ylabel("share")
    ax.set_title("Latency (CDF)")
    ax.legend()
    return _save(fig, path)


def against_delay(rows: Sequence[dict], path: Path) -> Path:
    """Sweep: WER, timestamp error and latency against the model delay; one line per family
    (the fixed-delay models, each delay-conditioned model)."""
    families: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["delay_s"]):
        families.setdefault(dsmlab.model_family(row.get("model", "")), []).append(row)
    panels = [
        (
            "WER (%)",
            [
                ("corpus_wer", "corpus WER", 100),
                ("lookahead_wer", "words only right context decides", 100),
                ("other_wer", "the other words", 100),
            ],
        ),
        ("median |start error| (ms)", [("start_abs_median_s", "start", 1000)]),
        (
            "latency (s)",
            [
                ("word_latency_median_s", "word emission (median)", 1),
                ("al_mean_s", "AL (mean)", 1),
                ("laal_mean_s", "LAAL (mean)", 1),
                ("real_time_final_s_median", "final transcript, real time", 1),
                ("flush_wall_s_median", "final transcript, flush (wall)", 1),
            ],
        ),
        (
            "WER of the flush study (%)",
            [
                ("real_time_corpus_wer", "trailing silence (= flush)", 100),
                ("no_silence_corpus_wer", "no trailing silence", 100),
            ],
        ),
    ]
    fig = _figure(figsize=(17, 3.6))
    axes = fig.subplots(1, 4)
    for ax, (ylabel, series) in zip(axes, panels, strict=True):
        drawn = False
        for (family, members), (key, label, scale) in itertools.product(families.items(), series):
            delays = [r["delay_s"] for r in members]
            values = [r.get(key) for r in members]
            if len(families) > 1:
                label = f"{label}, {family or 'fixed-delay models'}"
            if any(v is not None and not np.isnan(v) for v in values):
                ys = np.array([np.nan if v is None else v * scale for v in values])
                (line,) = ax.plot(delays, ys, "s--" if family else "o-", label=label)
                bounds = [r.get(f"{key}_ci95") for r in members]
                if all(b is not None for b in bounds):
                    # 95% intervals as bars; on a few utterances a percentile interval may
                    # leave out the point estimate, so they are drawn bound to bound
                    low, high = (np.array([b[k] for b in bounds]) * scale for k in (0, 1))
                    ax.vlines(delays, low, high, color=line.get_color(), lw=1.5)
                drawn = True
        if not drawn:
            ax.text(
                0.5,
                0.5,
                "no data\n(needs reference word times)",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="grey",
            )
        ax.set_xlabel("delay (s)")
        ax.set_ylabel(ylabel)
        if drawn and (len(series) > 1 or len(families) > 1):
            ax.legend(fontsize=8)
    fig.suptitle("The delay trade-off")
    return _save(fig, path)


def reliability(curves: dict, path: Path) -> Path:
    """Left: accuracy against confidence per bin (the diagonal is calibrated), each bin's words
    beneath. Right: the share of words kept above each threshold and the error among them."""
    bins, retention = curves["reliability"], curves["retention"]
    fig = _figure(figsize=(10, 5))
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1])
    top, bottom, right = (
        fig.add_subplot(grid[0, 0]),
        fig.add_subplot(grid[1, 0]),
        fig.add_subplot(grid[:, 1]),
    )
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    width = bins[0]["high"] - bins[0]["low"]
    top.bar(centers, [b["accuracy"] for b in bins], width=0.9 * width, label="accuracy")
    top.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    top.plot(centers, [b["confidence"] for b in bins], "o", color="tab:red", label="confidence")
    top.set_ylabel("share of words correct")
    top.set_title("Word confidence calibration")
    top.legend(fontsize=8)
    bottom.bar(centers, [b["words"] for b in bins], width=0.9 * width, color="grey")
    bottom.set_xlabel("word confidence")
    bottom.set_ylabel("words")
    bottom.set_xlim(0, 1)
    kept = [r for r in retention if r["kept_error"] is not None]
    right.plot([r["kept"] for r in kept], [100 * r["kept_error"] for r in kept], "o-")
    for r in kept:
        right.annotate(f"{r['threshold']:.1f}", (r["kept"], 100 * r["kept_error"]), fontsize=7)
    right.set_xlabel("share of words kept (confidence >= threshold)")
    right.set_ylabel("wrong among kept words (%)")
    right.set_title("Dropping unsure words")
    return _save(fig, path)


PAUSE_WORDS = {
    UNFINISHED: "in an unfinished sentence",
    HESITATION: "after a filler (uh, um)",
    FINISHED: "after a finished sentence",
}


def turn_curves(rows: Sequence[dict], pr_path: Path, latency_path: Path) -> tuple[Path, Path]:
    """eval.turns: precision against recall per detector (one point per threshold; silero: per
    pause rule), and the trade a voice agent makes: median detection latency against F1, against
    the semantic F1 (finished pauses set aside) and against false triggers per mid-turn pause of
    each kind."""
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    detectors = [d for d in detectors if any(r["f1"] > 0 for r in rows if r["detector"] == d)]
    fig = _figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    for name in detectors:
        mine = sorted((r for r in rows if r["detector"] == name), key=lambda r: r["threshold"])
        ax.plot([r["recall"] for r in mine], [r["precision"] for r in mine], "o-", label=name)
    ax.set_xlabel("recall (ends of turn found)")
    ax.set_ylabel("precision (events that were ends)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title("End-of-turn detection")
    ax.legend(fontsize=8)
    _save(fig, pr_path)
    kinds = kinds_present(rows)
    fig = _figure(figsize=(4.7 * (2 + len(kinds)), 3.8))
    by_f1, by_semantic, *by_kind = fig.subplots(1, 2 + len(kinds), sharey=True)
    for name in detectors:
        mine = sorted((r for r in rows if r["detector"] == name), key=lambda r: r["threshold"])
        latency = [r.get("latency_median_s", np.nan) for r in mine]
        line = by_f1.plot([r["f1"] for r in mine], latency, "o-", label=name)[0]
        by_semantic.plot([r["semantic_f1"] for r in mine], latency, "o-", color=line.get_color())
        for ax, kind in zip(by_kind, kinds, strict=True):
            xs = [r[f"{kind}_triggers_per_pause"] for r in mine]
            ax.plot(xs, latency, "o-", color=line.get_color(), label=name)
    by_f1.set_xlabel("F1 of end-of-turn events")
    by_f1.set_ylabel("median latency after the end (s)")
    by_semantic.set_xlabel("semantic F1 (pauses after finished sentences set aside)")
    for ax, kind in zip(by_kind, kinds, strict=True):
        ax.set_xlabel(f"false triggers per pause {PAUSE_WORDS[kind]}")
    by_f1.legend(fontsize=8)
    fig.suptitle("End-of-turn detection: latency against accuracy (one point per setting)")
    return pr_path, _save(fig, latency_path)


def rtfx_by_batch(rows: Sequence[dict], path: Path) -> Path:
    """`eval.bench --end-to-end`: whole-process RTFx of both tools against batch size."""
    fig = _figure(figsize=(6, 3.8))
    ax = fig.subplots()
    sizes = [r["batch_size"] for r in rows]
    for side, label in (("kyutai", "Kyutai's script (re-created)"), ("dsmlab", "eval.wer")):
        ax.plot(sizes, [r["rtfx"][side] for r in rows], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("RTFx (audio s / wall s, median run)")
    ax.set_ylim(bottom=0)
    ax.set_title("End to end, whole processes")
    ax.legend()
    return _save(fig, path)


def wer_by_position(rows: Sequence[dict], path: Path) -> Path:
    """`eval.longform`: WER per window of the stream, one line per model, and the same
    sentences transcribed alone (dashed, same colour)."""
    fig = _figure(figsize=(8, 4))
    ax = fig.subplots()
    for row, color in zip(rows, itertools.cycle(_COLORS), strict=False):
        windows = [w for w in row["windows"] if w["wer"] is not None]
        minutes = [w["start_s"] / 60 for w in windows]
        label = f"{row['model']} ({row['delay_s']:g} s)"
        ax.plot(minutes, [100 * w["wer"] for w in windows], "o-", color=color, label=label)
        if windows and "alone_wer" in windows[0]:
            alone = [100 * w["alone_wer"] for w in windows]
            ax.plot(minutes, alone, "--", color=color, alpha=0.6, label=f"{row['model']} alone")
        if row.get("collapses_s") and row["collapses_s"][0] is not None:
            ax.axvline(row["collapses_s"][0] / 60, color=color, linestyle=":")
    ax.set_xlabel("position in the stream (minutes, window start)")
    ax.set_ylabel("WER (%)")
    ax.set_ylim(bottom=0)
    ax.set_title("WER along the stream (dotted line: collapse)")
    ax.legend(fontsize="small")
    return _save(fig, path)


def speed_memory(rows: Sequence[dict], path: Path) -> Path:
    """`eval.longform`: RTFx and resident memory of each window as the stream grows."""
    fig = _figure(figsize=(10, 3.6))
    speed, memory = fig.subplots(1, 2)
    for row, color in zip(rows, itertools.cycle(_COLORS), strict=False):
        windows = row["resources"]
        minutes = [(w["start_s"] + w["audio_s"]) / 60 for w in windows]
        speed.plot(minutes, [w["rtfx"] for w in windows], color=color, label=row["model"])
        memory.plot(minutes, [w["rss_mb"] for w in windows], color=color, label=row["model"])
    speed.set_ylabel("RTFx (audio s / compute s)")
    memory.set_ylabel("resident memory (MB)")
    for ax in (speed, memory):
        ax.set_xlabel("audio fed (minutes)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small")
    fig.suptitle("Speed and memory as the stream grows")
    return _save(fig, path)


_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _figure(**options):
    """A matplotlib Figure, not pyplot's: the caller's backend (a notebook's) stays. Imported
    here, not at the top: matplotlib costs about a second of every eval script's start-up, and
    only a finished run draws."""
    from matplotlib.figure import Figure

    return Figure(**options)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
