"""python -m eval.timestamps --model M --dataset D --out DIR: word timestamp error and tcpWER.

Needs reference word times: a `words` column of {word, start, end} (the bundled synthetic
set, TIMIT-style or MFA alignments). Hypothesis words are matched to reference words
through the WER alignment; errors are reported on matched words.
"""

from __future__ import annotations

import argparse
import sys

import dsmlab

from . import metrics, plots, runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.timestamps", description=__doc__)
    runner.add_common_args(parser)
    parser.add_argument("--collar", type=float, default=0.2, help="tcpWER collar (s)")
    args = parser.parse_args(argv)

    def body() -> int:
        runner.fill_defaults(args, "timestamps")
        result = runner.run(args, args.model, args.out)
        if not result.is_main:
            return 0
        if not any(r.get("ref_words") for r in result.records if r["status"] == "ok"):
            raise dsmlab.DSMLabError(
                f"{result.data.name} has no reference word times: timestamps need a 'words' "
                "column of {word, start, end}"
            )
        normalize = metrics.normalizer(args.language)
        summary = metrics.wer_metrics(result.records) | metrics.timestamp_metrics(
            result.records, normalize, args.collar
        )
        runner.write_results(result, "timestamps", summary)
        plots.timestamp_errors(result.records, args.out / "timestamp_errors.png")
        runner.print_table(
            f"{result.model.name} on {result.data.name}: word timestamps",
            {k: v for k, v in summary.items() if k not in _WER_DETAIL},
        )
        return 0

    return runner.main_guard(body)


_WER_DETAIL = {"substitutions", "deletions", "insertions", "hits", "cer", "mean_utterance_wer"}

if __name__ == "__main__":
    sys.exit(main())
