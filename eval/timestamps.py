"""python -m eval.timestamps --model M --dataset D --out DIR: word timestamp error and tcpWER.

Needs reference word times: a `words` column of {word, start, end} (the bundled synthetic
set, TIMIT-style or MFA alignments). Hypothesis words are matched to reference words
through the WER alignment; errors are reported on matched words.
"""

from __future__ import annotations

import sys

import dsmlab

from . import metrics, options, plots, runner
from .results import print_table, print_written, write_results


def main(argv: list[str] | None = None) -> int:
    parser = options.parser("timestamps", __doc__)
    parser.add_argument(
        "--collar", type=dsmlab.cli.non_negative_float, default=0.2, help="tcpWER collar (s)"
    )
    args = runner.parse(parser, argv)

    def body() -> int:
        options.fill_defaults(args, "timestamps")
        with runner.run(args, args.model, args.out) as result:
            if not result.is_main:
                return 0
            if not any(r.get("ref_words") for r in result.records if r["status"] == "ok"):
                raise dsmlab.UsageError(
                    f"{result.data.name} has no reference word times: timestamps need a "
                    "'words' column of {word, start, end}"
                )
            normalize, merge_compounds = options.scoring(args)
            summary = metrics.wer_metrics(
                result.records, merge_compounds
            ) | metrics.timestamp_metrics(result.records, normalize, args.collar)
            write_results(result, "timestamps", summary)
            plots.timestamp_errors(result.records, args.out / "timestamp_errors.png")
        print_table(
            f"{result.model.name} on {result.data.name}: word timestamps",
            {k: v for k, v in summary.items() if k not in _WER_DETAIL},
        )
        print_written(args.out)
        return 0

    return dsmlab.run_cli(body, debug=args.debug)


_WER_DETAIL = {"substitutions", "deletions", "insertions", "hits", "corpus_cer"}
_WER_DETAIL |= {"mean_utterance_wer", "mean_utterance_cer"}

if __name__ == "__main__":
    sys.exit(main())
