"""python -m eval.wer --model M --dataset D --out DIR: WER (corpus and mean per utterance), CER,
error counts, RTFx, accuracy on the words only right context decides (when the dataset marks
them in a `lookahead` column), the calibration of word confidences (ECE, Brier, reliability.png; see
`confidence`); also an Open ASR Leaderboard manifest of the run (oalb/*.jsonl)."""

from __future__ import annotations

import sys

import dsmlab

from . import confidence, metrics, options, plots, runner
from .results import print_table, print_written, write_manifest, write_results


def main(argv: list[str] | None = None) -> int:
    args = runner.parse(options.parser("wer", __doc__), argv)

    def body() -> int:
        options.fill_defaults(args, "wer")
        with runner.run(args, args.model, args.out) as result:
            if not result.is_main:
                return 0
            normalize, merge_compounds = options.scoring(args)
            summary = metrics.wer_metrics(result.records, merge_compounds)
            summary |= metrics.lookahead_metrics(result.records, normalize)
            calibration, curves = confidence.confidence_metrics(result.records, normalize)
            summary |= calibration
            results = write_results(result, "wer", summary, curves)
            if curves:
                plots.reliability(curves, args.out / "reliability.png")
            write_manifest(result, results["speed"]["rtfx"])
            plots.wer_histogram(result.records, args.out / "wer_histogram.png")
        print_table(
            f"{result.model.name} on {result.data.name} "
            f"(protocol {args.protocol}, normalizer {args.normalizer})",
            summary | {"rtfx": results["speed"]["rtfx"]},
        )
        print_written(args.out)
        return 0

    return dsmlab.run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
