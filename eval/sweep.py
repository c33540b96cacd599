"""python -m eval.sweep --model A --model B ... --dataset D --out DIR: the delay trade-off.

Each model brings its own delay (delay is a training-time choice); a delay-conditioned model
is given once per delay, as DIR@0.32 (`dsmlab.load`). Every model runs through the shared
runner into DIR/<model>/ (resumable); the sweep adds the latency metrics and the flush study
of `eval.latency`, 95% intervals on WER and paired differences (`metrics.delay_pairs`: between
consecutive delays of the fixed-delay models and of each conditioned model, and between a
conditioned model and the fixed-delay one at the same delay), the WER of the words only right
context decides and of the rest when the dataset marks them (`eval.wer`), and writes
sweep.json, sweep.csv and against_delay.png.
"""

from __future__ import annotations

import shlex
import sys

import pandas as pd

import dsmlab

from . import metrics, options, plots, rundir, runner
from .latency import latency_summary
from .results import print_written, write_json, write_results

COLUMNS = [
    "model",
    "delay_s",
    "corpus_wer",
    "corpus_wer_ci95_low",
    "corpus_wer_ci95_high",
    "mean_utterance_wer",
    "corpus_cer",
    "lookahead_accuracy",
    "lookahead_choice_accuracy",
    "lookahead_wer",
    "other_wer",
    "start_abs_median_s",
    "end_abs_median_s",
    "start_within_80ms",
    "tcpwer",
    "word_latency_median_s",
    "al_mean_s",
    "laal_mean_s",
    "start_offset_mean_s",
    "end_offset_mean_s",
    "ca_al_mean_s",
    "finalization_no_flush_median_s",
    "real_time_corpus_wer",
    "no_silence_corpus_wer",
    "flush_same_words",
    "real_time_final_s_median",
    "flush_wall_s_median",
    "flush_batch_wall_s_median",
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
        with rundir.opened(args.out, dsmlab.cli.torchrun_rank()[0]):
            rows, runs = _run_models(args)
        if not rows:
            return 0
        differences = metrics.paired_wer_differences(runs)
        for row in rows:
            low_high = row.get("corpus_wer_ci95") or [None, None]
            row["corpus_wer_ci95_low"], row["corpus_wer_ci95_high"] = low_high
        table = pd.DataFrame(rows).reindex(columns=COLUMNS).sort_values("delay_s")
        table.to_csv(args.out / "sweep.csv", index=False)
        command = ["python", "-m", "eval.sweep", *args.argv]
        write_json(
            args.out / "sweep.json",
            {
                "command": command,
                "command_line": shlex.join(command),
                "rows": table.to_dict(orient="records"),
                "differences": differences,
                "intervals": "95% bootstrap over utterances, paired for differences",
            },
        )
        plots.against_delay(rows, args.out / "against_delay.png")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        for d in differences:
            verdict = "real" if d["real"] else "within noise"
            print(
                f"{d['from']} -> {d['to']}: corpus WER {100 * d['corpus_wer_difference']:+.2f} "
                f"points, 95% CI [{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}] "
                f"({verdict}, {d['utterances']} utterances)"
            )
        print_written(args.out)
        return 0

    return dsmlab.run_cli(body, debug=args.debug)


def _run_models(args) -> tuple[list[dict], list[tuple]]:
    """Each model's run in its own directory under args.out: its summary row, its records."""
    rows, runs = [], []
    for spec in args.model:
        with runner.run(args, spec, args.out / rundir.model_dirname(spec)) as result:
            if not result.is_main:
                continue
            summary, extra = latency_summary(result, args.flush_samples, args.batch_size)
            normalize = options.scoring(args)[0]
            summary |= metrics.lookahead_metrics(result.records, normalize)
            if any(r.get("ref_words") for r in result.records if r["status"] == "ok"):
                summary |= metrics.timestamp_metrics(result.records, normalize, args.collar)
            results = write_results(result, "sweep", summary, extra)
        runs.append((result.model.name, result.model.delay_s, result.records))
        rows.append(
            {
                "model": result.model.name,
                "delay_s": result.model.delay_s,
                **summary,
                "rtfx": results["speed"]["rtfx"],
            }
        )
    return rows, runs


if __name__ == "__main__":
    sys.exit(main())
