"""PNG figures for run directories: where people would rather look than read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # not pyplot: the caller's backend (a notebook's) stays


def wer_histogram(records: Sequence[dict], path: Path) -> Path:
    wers = [min(r["wer"], 2.0) for r in records if r["status"] == "ok"]
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.hist(wers, bins=20, range=(0, 2.0), color="tab:blue")
    ax.set_xlabel("utterance WER (capped at 2)")
    ax.set_ylabel("utterances")
    ax.set_title(f"Per-utterance WER ({len(wers)} utterances)")
    return _save(fig, path)


def timestamp_errors(records: Sequence[dict], path: Path) -> Path:
    matches = [m for r in records if r["status"] == "ok" for m in r.get("matches", [])]
    fig = Figure(figsize=(6, 3.5))
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
    fig = Figure(figsize=(6, 3.5))
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
    """Sweep: WER, timestamp error and latency against the model delay."""
    rows = sorted(rows, key=lambda r: r["delay_s"])
    delays = [r["delay_s"] for r in rows]
    panels = [
        ("WER (%)", [("corpus_wer", "corpus WER", 100)]),
        ("median |start error| (ms)", [("start_abs_median_s", "start", 1000)]),
        (
            "latency (s)",
            [
                ("word_latency_median_s", "word emission (median)", 1),
                ("finalization_no_flush_median_s", "finalization, no flush", 1),
                ("finalization_flush_median_s", "finalization, flush", 1),
            ],
        ),
    ]
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3)
    for ax, (ylabel, series) in zip(axes, panels, strict=True):
        drawn = False
        for key, label, scale in series:
            values = [r.get(key) for r in rows]
            if any(v is not None and not np.isnan(v) for v in values):
                ax.plot(
                    delays, [np.nan if v is None else v * scale for v in values], "o-", label=label
                )
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
        if len(series) > 1:
            ax.legend(fontsize=8)
    fig.suptitle("The delay trade-off")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
