"""python -m eval.compare BEFORE AFTER...: did WER change beyond noise between runs?

Each argument is an eval run directory (results.json and utterances.jsonl, from any eval
script) on the same utterances: a model against another, a retrained model against the
bundled one; or a model's directory of an eval.longform run (DIR/<model>/), paired by the
sentences of its streams. Each AFTER is set against BEFORE on the utterances both scored:
corpus WER of each, the difference, and its paired 95% bootstrap interval over those
utterances (tighter than the two runs' own intervals, since both are resampled together).
Runs scored under different normalizers are refused: their WERs count different things.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dsmlab

from . import metrics, runner
from .records import read_records, stream_sentences
from .results import read_results
from .rundir import STREAM_RECORDS


def compare(before: Path, after: Path) -> dict:
    """BEFORE and AFTER's corpus WERs on their common utterances, and the paired difference."""
    runs = {d: (read_results(d), scored_units(d)) for d in (before, after)}
    normalizers = {d: r.get("definitions", {}).get("normalizer") for d, (r, _) in runs.items()}
    if normalizers[before] != normalizers[after]:
        raise dsmlab.UsageError(
            f"{before} was scored with the {normalizers[before]} normalizer and {after} with "
            f"{normalizers[after]}: rerun one with the other's --normalizer"
        )
    difference = metrics.paired_wer_difference(runs[before][1], runs[after][1])
    if difference is None:
        raise dsmlab.UsageError(f"{before} and {after} scored no utterance in common")
    return {
        "before": {"run": str(before), "model": runs[before][0]["model"]["model"]},
        "after": {"run": str(after), "model": runs[after][0]["model"]["model"]},
        **difference,
    }


def scored_units(run: Path) -> list[dict]:
    """The run's utterance records; for a model's eval.longform directory, its streams'
    sentences."""
    if (run / STREAM_RECORDS).is_file():
        return stream_sentences(read_records(run, pattern=STREAM_RECORDS))
    return read_records(run)


def describe(found: dict) -> str:
    verdict = "beyond noise" if found["real"] else "within noise"
    (before, after), (low, high) = ([100 * x for x in found[k]] for k in ("corpus_wers", "ci95"))
    return (
        f"{found['after']['run']} ({found['after']['model']}) against {found['before']['run']} "
        f"({found['before']['model']}): corpus WER {before:.2f}% -> {after:.2f}%, "
        f"{100 * found['corpus_wer_difference']:+.2f} points, 95% CI [{low:+.2f}, {high:+.2f}] "
        f"({verdict}, {found['utterances']} utterances)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = dsmlab.cli.ArgumentParser(prog="python -m eval.compare", description=__doc__)
    parser.add_argument("before", type=Path, help="the run directory compared against")
    parser.add_argument("after", nargs="+", type=Path, help="run directories set against it")
    parser.add_argument("--json", action="store_true", help="one JSON object per comparison")
    args = runner.parse(parser, argv)

    def body() -> int:
        for after in args.after:
            found = compare(args.before, after)
            print(json.dumps(found) if args.json else describe(found))
        return 0

    return dsmlab.run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
