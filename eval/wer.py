"""python -m eval.wer --model M --dataset D --out DIR: corpus WER, CER, error counts, RTFx."""

from __future__ import annotations

import argparse
import sys

from . import metrics, plots, runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.wer", description=__doc__)
    runner.add_common_args(parser)
    args = parser.parse_args(argv)

    def body() -> int:
        runner.fill_defaults(args, "wer")
        result = runner.run(args, args.model, args.out)
        if not result.is_main:
            return 0
        summary = metrics.wer_metrics(result.records)
        results = runner.write_results(result, "wer", summary)
        plots.wer_histogram(result.records, args.out / "wer_histogram.png")
        runner.print_table(
            f"{result.model.name} on {result.data.name}",
            summary | {"rtfx": results["speed"]["rtfx"]},
        )
        return 0

    return runner.main_guard(body)


if __name__ == "__main__":
    sys.exit(main())
