"""python -m eval.latency --model M --dataset D --out DIR: how fast words and turns arrive.

- word emission latency: stream time at which a word's last token came out, minus the
  reference word end, and minus its start (matched words; needs reference word times);
- AL, LAAL, StartOffset and EndOffset of simultaneous translation, per utterance, and their
  computation-aware values at the measured step cost (see `lagging`);
- finalization without flush: after the audio ends, the stream time until the last word
  comes out when silence is fed in real time;
- the flush study on --flush-samples utterances (see `flush`): real-time silence, the flush
  at batch 1 and --batch-size, and no trailing silence: WER of each (the first two must give
  the same words) and the time from the end of the audio to the final transcript;
- the compute cost of one step at --batch-size, and the streams it could keep in real time.
"""

from __future__ import annotations

import sys
import time

import torch

import dsmlab

from . import flush, lagging, metrics, options, plots, runner
from .results import print_table, print_written, write_results


def main(argv: list[str] | None = None) -> int:
    parser = options.parser("latency", __doc__)
    parser.add_argument(
        "--flush-samples",
        type=dsmlab.cli.non_negative_int,
        default=20,
        help="utterances on which the flush is timed",
    )
    args = runner.parse(parser, argv)

    def body() -> int:
        options.fill_defaults(args, "latency")
        with runner.run(args, args.model, args.out) as result:
            if not result.is_main:
                return 0
            summary, extra = latency_summary(result, args.flush_samples, args.batch_size)
            write_results(result, "latency", summary, extra)
            plots.latency_cdf(
                result.records, args.out / "latency_cdf.png", extra["flush_latencies_s"]
            )
        print_table(f"{result.model.name} on {result.data.name}: latency", summary)
        print_written(args.out)
        return 0

    return dsmlab.run_cli(body, debug=args.debug)


def latency_summary(result: runner.Run, flush_samples: int, batch_size: int):
    """Latency metrics of a finished run, with the flush study and step cost measured now."""
    normalize = options.scoring(result.args)[0]
    flushed_together = min(batch_size, flush.MAX_FLUSH_BATCH)
    studies, references = flush_study(result, flush_samples, flushed_together, normalize)
    step_s = measure_step(result.model, batch_size)
    summary = (
        metrics.wer_metrics(result.records, options.scoring(result.args)[1])
        | metrics.latency_metrics(result.records)
        | metrics.step_metrics(step_s, batch_size)
        | flush.flush_summary(studies, references, flushed_together)
        | lagging.lagging_summary(
            result.records, step_s, 1 / dsmlab.FRAME_RATE, result.model.prefix_s
        )
    )
    walls = [s["flush_wall_s"] for s in studies]
    return summary, {"flush_latencies_s": walls, "flush_study": studies}


def flush_study(
    result: runner.Run, samples: int, batch_size: int, normalize
) -> tuple[list[dict], list[str]]:
    """`flush.study_utterance` on the first `samples` transcribed utterances (with each one's
    normalized reference)."""
    wanted = {r["index"]: r["ref_norm"] for r in result.records if r["status"] == "ok"}
    studies, references = [], []
    for utt in result.data:
        if len(studies) >= samples:
            break
        if utt.index in wanted and utt.audio is not None:
            found = flush.study_utterance(result.model, utt.audio, batch_size, normalize)
            studies.append({"index": utt.index, **found})
            references.append(wanted[utt.index])
    return studies, references


def measure_step(model: dsmlab.DSMModel, batch_size: int, steps: int = 20) -> float:
    """Seconds per step at `batch_size` (frames of noise, after 3 warm-up steps)."""
    frames = 0.1 * torch.randn(batch_size, 1, model.frame_size)
    with dsmlab.Stepper(model, batch_size) as stepper:
        for _ in range(3):
            stepper.step_tensors(frames)
        _sync(model)
        start = time.perf_counter()
        for _ in range(steps):
            stepper.step_tensors(frames)
        _sync(model)
    return (time.perf_counter() - start) / steps


def _sync(model: dsmlab.DSMModel) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


if __name__ == "__main__":
    sys.exit(main())
