"""python -m eval.bench: Kyutai's plain inference loop against dsmlab's scheduler, side by side.

Both run the same model on the same audio (real speech from the bundled test split, cut into
--seconds per stream and padded as Kyutai pads), at each --batch-size, on --device:
  reference  Kyutai's loop: Mimi streaming encode of each 80 ms frame, LMGen.step, and the
             step's tokens brought to the host (one sync per step).
  dsmlab     the scheduler: the same modules, continuous batching, tokens kept on the device.
Prints and writes (bench.json) the RTFx of each, their ratio, the per-frame token agreement,
steps/s and peak memory; with --realtime, the live capacity: the largest batch whose step
stays under 80 ms, and the flush time of a 0.5 s delay at that batch.

    python -m eval.bench --model synth-d16 --batch-size 1 8 32
    python -m eval.bench --model random:stt-2.6b-en --batch-size 1 32 64 128 --realtime
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from moshi.models import LMGen
from moshi.utils.compile import no_compile

import dsmlab
from dsmlab import ENCODE_AHEAD, pad_for_model
from dsmlab.data import load_data

from . import end_to_end, options, plots, rundir, runner
from .results import environment, print_table, write_json

FRAME_BUDGET_S = (
    1 / dsmlab.FRAME_RATE
)  # a live stream must finish each step within one frame of audio
LIVE_DELAY_S = 0.5  # the flush reported for live capacity: stt-1b-en_fr's delay


@dataclass
class BenchRow:
    batch_size: int
    streams: int
    audio_s: float  # speech in all streams, without padding
    reference_rtfx: float
    dsmlab_rtfx: float
    speedup: float
    token_agreement: float  # share of (stream, frame) tokens equal between the two loops
    reference_steps: int  # batched steps each loop ran
    dsmlab_steps: int
    reference_steps_per_s: float
    dsmlab_steps_per_s: float
    reference_peak_gb: float
    dsmlab_peak_gb: float


def load_bench_model(spec: str, device: str | None) -> dsmlab.DSMModel:
    """`random:<architecture>` builds the released architecture with random weights."""
    if spec.startswith("random:"):
        arch = spec.removeprefix("random:")
        if arch not in dsmlab.ARCHITECTURES:
            raise dsmlab.DSMLabError(
                f"unknown architecture {arch!r}; choose one of {', '.join(dsmlab.ARCHITECTURES)}"
            )
        target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
        return dsmlab.build_random(arch, device=target, dtype=dtype)
    return dsmlab.load(spec, device=device)


def speech(utterances: list[torch.Tensor], batch_size: int, seconds: float) -> list[torch.Tensor]:
    """`batch_size` streams of `seconds` each: the utterances joined end to end; stream b
    starts at utterance b, so the streams differ."""
    n = round(seconds * dsmlab.SAMPLE_RATE)
    streams = []
    for b in range(batch_size):
        joined, k = [], b
        while sum(x.numel() for x in joined) < n:
            joined.append(utterances[k % len(utterances)])
            k += 1
        streams.append(torch.cat(joined)[:n])
    return streams


def dataset_speech(dataset: str, max_samples: int | None) -> list[torch.Tensor]:
    """The utterances of a dataset, in its order, as 24 kHz mono."""
    return [torch.from_numpy(u.audio) for u in load_data(dataset, max_samples=max_samples)]


@torch.no_grad()
def reference_loop(model: dsmlab.DSMModel, padded: torch.Tensor) -> torch.Tensor:
    """Kyutai's loop (delayed-streams-modeling scripts, Open ASR Leaderboard's run_eval):
    [B, samples] padded audio in, [B, frames] text tokens out."""
    batch = padded.shape[0]
    lm_gen = LMGen(model.lm, temp=0, temp_text=0, condition_tensors=model.condition_tensors(batch))
    tokens = []
    with model.mimi.streaming(batch), lm_gen.streaming(batch):
        for offset in range(0, padded.shape[1], model.frame_size):
            chunk = padded[:, None, offset : offset + model.frame_size].to(model.device)
            codes = model.mimi.encode(chunk)
            tokens.append(lm_gen.step(codes)[:, 0, 0].cpu())  # the per-step host sync
    return torch.stack(tokens, dim=1)


def reference_run(
    model: dsmlab.DSMModel, streams: list[torch.Tensor], batch_size: int
) -> tuple[list[torch.Tensor], int]:
    """Kyutai's batching: consecutive streams, each batch padded to its longest. Returns each
    stream's tokens over its own frames, and the steps run."""
    out, steps = [], 0
    for first in range(0, len(streams), batch_size):
        padded = [pad_for_model(x, model) for x in streams[first : first + batch_size]]
        longest = max(p.numel() for p in padded)
        batch = torch.stack([torch.nn.functional.pad(p, (0, longest - p.numel())) for p in padded])
        tokens = reference_loop(model, batch)
        out += [tokens[i, : p.numel() // model.frame_size] for i, p in enumerate(padded)]
        steps += tokens.shape[1]
    return out, steps


def dsmlab_run(
    model: dsmlab.DSMModel,
    streams: list[torch.Tensor],
    batch_size: int,
    encode_ahead: int = ENCODE_AHEAD,
) -> tuple[list[torch.Tensor], int]:
    """dsmlab's offline path, as transcribe_batch drives it: longest first, and a slot
    refilled as soon as its stream ends."""
    order = sorted(range(len(streams)), key=lambda i: -streams[i].numel())
    tokens = {}
    with dsmlab.Stepper(model, batch_size) as stepper:
        padded = ((i, pad_for_model(streams[i], model)) for i in order)
        for result in dsmlab.run_streams(stepper, padded, encode_ahead):
            tokens[result.key] = torch.from_numpy(result.tokens)
    return [tokens[i] for i in range(len(streams))], stepper.steps


def timed(fn, model: dsmlab.DSMModel, streams: list[torch.Tensor], batch_size: int, **options):
    """(tokens, steps, wall seconds, peak memory GB: CUDA allocations, else the process's
    peak RSS)."""
    cuda = model.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(model.device)
        torch.cuda.reset_peak_memory_stats(model.device)
    start = time.perf_counter()
    with nullcontext() if cuda else no_compile():  # eager on CPU, as the stepper runs there
        tokens, steps = fn(model, streams, batch_size, **options)
    if cuda:
        torch.cuda.synchronize(model.device)
    wall = time.perf_counter() - start
    if cuda:
        peak = torch.cuda.max_memory_allocated(model.device) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return tokens, steps, wall, peak


def bench_row(
    model: dsmlab.DSMModel,
    streams: list[torch.Tensor],
    batch_size: int,
    encode_ahead: int = ENCODE_AHEAD,
) -> BenchRow:
    warm = [streams[0][: 4 * model.frame_size]] * batch_size  # first calls: graphs, allocator
    reference_run(model, warm, batch_size)
    dsmlab_run(model, warm, batch_size, encode_ahead)
    ref_tokens, ref_steps, ref_wall, ref_peak = timed(reference_run, model, streams, batch_size)
    our_tokens, our_steps, our_wall, our_peak = timed(
        dsmlab_run, model, streams, batch_size, encode_ahead=encode_ahead
    )
    equal = sum(int((a == b).sum()) for a, b in zip(ref_tokens, our_tokens, strict=True))
    frames = sum(len(t) for t in ref_tokens)
    audio = sum(x.numel() for x in streams) / dsmlab.SAMPLE_RATE
    return BenchRow(
        batch_size=batch_size,
        streams=len(streams),
        audio_s=round(audio, 2),
        reference_rtfx=round(audio / ref_wall, 2),
        dsmlab_rtfx=round(audio / our_wall, 2),
        speedup=round(ref_wall / our_wall, 3),
        token_agreement=round(equal / frames, 6),
        reference_steps=ref_steps,
        dsmlab_steps=our_steps,
        reference_steps_per_s=round(ref_steps / ref_wall, 2),
        dsmlab_steps_per_s=round(our_steps / our_wall, 2),
        reference_peak_gb=round(ref_peak, 3),
        dsmlab_peak_gb=round(our_peak, 3),
    )


def live_step_s(model: dsmlab.DSMModel, batch_size: int, steps: int = 12) -> float:
    """Median seconds of one live step (frame in, tokens on the host) at `batch_size`."""
    frames = 0.1 * torch.randn(batch_size, 1, model.frame_size, device=model.device)
    walls = []
    with dsmlab.Stepper(model, batch_size) as stepper:
        for k in range(steps + 3):
            start = time.perf_counter()
            stepper.step_tensors(frames)[0].cpu()
            if k >= 3:
                walls.append(time.perf_counter() - start)
    return sorted(walls)[len(walls) // 2]


def realtime_capacity(model: dsmlab.DSMModel, max_batch: int) -> dict:
    """Doubling batch sizes until a live step takes longer than a frame of audio."""
    steps, batch = {}, 1
    while batch <= max_batch:
        try:
            steps[batch] = live_step_s(model, batch)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        if steps[batch] > FRAME_BUDGET_S:
            break
        batch *= 2
    fits = [b for b, s in steps.items() if s <= FRAME_BUDGET_S]
    best = max(fits) if fits else None
    flush = dsmlab.flush_frames(LIVE_DELAY_S, model.frame_rate)
    return {
        "step_ms_by_batch": {b: round(1000 * s, 2) for b, s in steps.items()},
        "largest_realtime_batch": best,
        "searched_up_to": max_batch,
        "flush_frames_for_0.5s_delay": flush,
        "flush_ms_at_that_batch": round(1000 * flush * steps[best], 1) if best else None,
    }


def print_rows(title: str, rows: list[BenchRow]) -> None:
    print(f"\n{title}")
    header = (
        "batch  ref RTFx  dsmlab RTFx  speedup  agreement  ref steps/s  dsmlab steps/s  peak GB"
    )
    print(header)
    for r in rows:
        print(
            f"{r.batch_size:5d}  {r.reference_rtfx:8.1f}  {r.dsmlab_rtfx:11.1f}  "
            f"{r.speedup:6.2f}x  {r.token_agreement:9.4f}  {r.reference_steps_per_s:11.1f}  "
            f"{r.dsmlab_steps_per_s:14.1f}  {max(r.reference_peak_gb, r.dsmlab_peak_gb):7.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = dsmlab.cli.ArgumentParser(prog="python -m eval.bench", description=__doc__)
    parser.add_argument(
        "--model",
        help="short name, HF repo, checkpoint dir, or random:<architecture> (stt-1b-en_fr, "
        "stt-2.6b-en, tiny) for random weights (default: eval.wer's, the bundled model "
        "with the lowest test-split WER)",
    )
    parser.add_argument(
        "--batch-size",
        type=dsmlab.cli.positive_int,
        nargs="+",
        help="a row each (default 1 8); --end-to-end: a row each, besides both tools' defaults",
    )
    parser.add_argument(
        "--seconds",
        type=dsmlab.cli.positive_float,
        default=10.0,
        help="speech per stream (one batch of streams)",
    )
    parser.add_argument(
        "--dataset",
        help="instead of --seconds: a dataset's utterances in its order (alias, HF id or path), "
        "batched as each loop batches them",
    )
    parser.add_argument(
        "--max-samples", type=dsmlab.cli.positive_int, help="with --dataset: the first N rows"
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument(
        "--realtime", action="store_true", help="also measure live capacity (up to --max-live)"
    )
    parser.add_argument(
        "--max-live", type=dsmlab.cli.positive_int, default=1024, help="largest live batch"
    )
    parser.add_argument(
        "--encode-ahead",
        type=dsmlab.cli.positive_int,
        default=ENCODE_AHEAD,
        help=f"dsmlab: frames per Mimi call (default {ENCODE_AHEAD})",
    )
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="instead: a whole dataset (default synth) evaluated by Kyutai's script re-created "
        "and by eval.wer, as whole processes (see eval/end_to_end.py)",
    )
    parser.add_argument(
        "--runs", type=dsmlab.cli.positive_int, default=3, help="--end-to-end: runs of each"
    )
    parser.add_argument(
        "--long-file-minutes",
        type=dsmlab.cli.non_negative_float,
        default=10.0,
        help="--end-to-end: memory of one file this long and of one a tenth as long (0: skip)",
    )
    options.add_threads(parser)
    parser.add_argument("--out", type=Path, help="run directory (default: runs/bench-<model>)")
    args = runner.parse(parser, argv)

    def body() -> int:
        sizes = args.batch_size  # read before fill_defaults gives eval.wer's default batch
        options.fill_defaults(args, "bench")
        rundir.prepare(args.out)
        if args.end_to_end:
            threads = args.threads or torch.get_num_threads()
            found = end_to_end.run(
                args.model,
                args.dataset or "synth",
                args.out,
                args.runs,
                threads,
                sizes or [args.batch_size],
                args.long_file_minutes,
            )
            write_json(args.out / "end_to_end.json", found)
            plots.rtfx_by_batch(found["rows"], args.out / "rtfx_by_batch.png")
            end_to_end.print_summary(found)
            print(f"\nwritten: {args.out / 'end_to_end.json'}, {args.out / 'rtfx_by_batch.png'}")
            return 0
        model = load_bench_model(str(args.model), args.device)
        rows = []
        # read once: the dataset's utterances, else the bundled test speech to cut streams from
        utterances = (
            dataset_speech(args.dataset, args.max_samples)
            if args.dataset
            else dataset_speech("synth", None)
        )
        for batch in sizes or [1, 8]:
            streams = utterances if args.dataset else speech(utterances, batch, args.seconds)
            try:
                rows.append(bench_row(model, streams, batch, args.encode_ahead))
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                print(f"batch {batch}: out of device memory; skipped")
                continue
            print_rows(f"{model.name} on {model.device}", rows[-1:])
        results = {
            "model": model.describe(),
            "audio": {"dataset": args.dataset, "max_samples": args.max_samples}
            if args.dataset
            else {"seconds_per_stream": args.seconds},
            "rows": [asdict(r) for r in rows],
            "encode_ahead": args.encode_ahead,
            "environment": environment(model),
        }
        if args.realtime:
            results["realtime"] = realtime_capacity(model, args.max_live)
        write_json(args.out / "bench.json", results)
        audio = args.dataset or f"{args.seconds:g} s of speech per stream"
        print_rows(f"{model.name} on {model.device}: {audio}", rows)
        if args.realtime:
            print_table("live capacity (frame in, tokens out, under 80 ms)", results["realtime"])
        print(f"\nwritten: {args.out / 'bench.json'}")
        return 0

    return dsmlab.run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
