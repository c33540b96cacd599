"""python -m eval.sweep --model A --model B ... --dataset D --out DIR: the delay trade-off.

Each model brings its own delay (delay is a training-time choice). Every model runs through
the shared runner into DIR/<model>/ (resumable); the sweep adds finalization with and without
the flush trick, and writes sweep.json, sweep.csv and against_delay.png.
"""

from __future__ import annotations

import shlex
import sys

import pandas as pd

import dsmlab

from . import metrics, options, plots, rundir, runner
from .latency import latency_summary
from .results import write_json, write_results

COLUMNS = [
    "model",
    "delay_s",
    "corpus_wer",
    "mean_utterance_wer",
    "corpus_cer",
    "start_abs_median_s",
    "end_abs_median_s",
    "start_within_80ms",
    "tcpwer",
    "word_latency_median_s",
    "finalization_no_flush_median_s",
    "finalization_flush_median_s",
    "rtfx",
]


def main(argv: list[str] | None = None) -> int:
    parser = options.parser("sweep", __doc__, several_models=True)
    parser.add_argument(
        "--collar", type=dsmlab.cli.non_negative_float, default=0.2, help="tcpWER collar (s)"
    )
    parser.add_argument("--flush-samples", type=dsmlab.cli.non_negative_int, default=20)
    args = runner.parse(parser, argv)

    def body() -> int:
        options.fill_defaults(args, "sweep", several=True)
        rundir.prepare(args.out)
        rows = []
        for spec in args.model:
            with runner.run(args, spec, args.out / _dirname(spec)) as result:
                if not result.is_main:
                    continue
                summary, extra = latency_summary(result, args.flush_samples, args.batch_size)
                if any(r.get("ref_words") for r in result.records if r["status"] == "ok"):
                    summary |= metrics.timestamp_metrics(
                        result.records, options.scoring(args)[0], args.collar
                    )
                results = write_results(result, "sweep", summary, extra)
            rows.append(
                {
                    "model": result.model.name,
                    "delay_s": result.model.delay_s,
                    **summary,
                    "rtfx": results["speed"]["rtfx"],
                }
            )
        if not rows:
            return 0
        table = pd.DataFrame(rows).reindex(columns=COLUMNS).sort_values("delay_s")
        table.to_csv(args.out / "sweep.csv", index=False)
        command = ["python", "-m", "eval.sweep", *args.argv]
        write_json(
            args.out / "sweep.json",
            {
                "command": command,
                "command_line": shlex.join(command),
                "rows": table.to_dict(orient="records"),
            },
        )
        plots.against_delay(rows, args.out / "against_delay.png")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        return 0

    return runner.main_guard(body, args)


def _dirname(spec: str) -> str:
    return spec.rstrip("/").replace("/", "__").lstrip("._") or "model"


if __name__ == "__main__":
    sys.exit(main())
