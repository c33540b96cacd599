"""python -m eval.wer --model M --dataset D --out DIR: corpus WER, CER, error counts, RTFx."""

from __future__ import annotations

import sys

from . import metrics, options, plots, runner
from .results import print_table, write_results


def main(argv: list[str] | None = None) -> int:
    args = runner.parse(options.parser("wer", __doc__), argv)

    def body() -> int:
        options.fill_defaults(args, "wer")
        with runner.run(args, args.model, args.out) as result:
            if not result.is_main:
                return 0
            summary = metrics.wer_metrics(result.records)
            results = write_results(result, "wer", summary)
            plots.wer_histogram(result.records, args.out / "wer_histogram.png")
        print_table(
            f"{result.model.name} on {result.data.name}",
            summary | {"rtfx": results["speed"]["rtfx"]},
        )
        return 0

    return runner.main_guard(body, args)


if __name__ == "__main__":
    sys.exit(main())
