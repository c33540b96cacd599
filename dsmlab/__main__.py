"""Command line: `python -m dsmlab transcribe FILE... [--model M]`, `models`, `migrate`,
`random-checkpoint`."""

from __future__ import annotations

import argparse
import json
import sys

from .cli import ArgumentParser, non_negative_int, positive_int, probability, run_cli
from .errors import UsageError


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dsmlab", description=__doc__, debug_flag=False)
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("transcribe", help="transcribe audio files offline")
    t.add_argument("files", nargs="+", help="audio files (wav, flac, mp3, ogg, opus)")
    t.add_argument(
        "--model",
        help="short name, HF repo id or checkpoint dir (default: the default bundled model)",
    )
    t.add_argument("--timestamps", action="store_true", help="print each word's start and end")
    t.add_argument("--vad", action="store_true", help="print semantic-VAD end-of-turn times")
    t.add_argument("--vad-threshold", type=probability, default=0.5, help="in (0, 1]")
    t.add_argument(
        "--vad-hold", type=positive_int, default=1, help="frames the probability must hold"
    )
    t.add_argument("--json", action="store_true", help="one JSON object per file (JSON Lines)")
    t.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    t.add_argument("--batch-size", type=positive_int, default=8, help="streams run together")

    commands.add_parser("models", help="list the short model names")

    m = commands.add_parser(
        "migrate", help="rewrite checkpoint folders in the current layout (moshi loads them)"
    )
    m.add_argument("folders", nargs="+", help="checkpoint folders, rewritten in place")

    r = commands.add_parser("random-checkpoint", help="write a random-weight checkpoint")
    r.add_argument("arch", help="tiny, stt-1b-en_fr or stt-2.6b-en")
    r.add_argument("out", help="directory to write (HF layout)")
    r.add_argument("--seed", type=non_negative_int, default=0)
    r.add_argument("--vad", action="store_true", help="add semantic-VAD heads")

    args = parser.parse_args(argv)
    commands = {
        "transcribe": _transcribe,
        "models": _models,
        "migrate": _migrate,
        "random-checkpoint": _random_checkpoint,
    }
    return run_cli(lambda: commands[args.command](args), debug=args.debug)


def _default_model() -> str:
    """The bundled model the eval scripts run when none is named."""
    from .bundled import default_model

    name = default_model()
    if name is None:
        raise UsageError("no bundled model is installed: name one with --model")
    return name


def _transcribe(args: argparse.Namespace) -> int:
    from .audio import load_audio
    from .loading import load
    from .transcribe import transcribe_batch

    pcms = [load_audio(f) for f in args.files]  # fail on a bad file before loading the model
    model = load(args.model or _default_model(), device=args.device)
    if args.vad and not model.has_vad:
        raise UsageError(
            f"{model.name} has no semantic-VAD heads; use a checkpoint that has them "
            "(e.g. stt-1b-en_fr-candle)"
        )
    transcripts = transcribe_batch(
        model,
        pcms,
        sample_rates=[model.sample_rate] * len(pcms),
        batch_size=args.batch_size,
        progress=len(pcms) > 1 and not args.json,
    )
    for path, tr in zip(args.files, transcripts, strict=True):
        ends = tr.end_of_turn_times(args.vad_threshold, args.vad_hold) if args.vad else []
        if args.json:
            record = {"file": path, **tr.to_dict()}
            if not args.vad:
                record.pop("end_of_turn")
            else:
                record["end_of_turn_times"] = ends
            print(json.dumps(record, ensure_ascii=False))
            continue
        print(f"{path}: {tr.text}" if len(args.files) > 1 else tr.text)
        if args.timestamps:
            for w in tr.words:
                print(f"  {w.start:7.2f} {w.end:7.2f}  {w.word}")
        if args.vad:
            print("  end of turn at: " + (", ".join(f"{t:.2f} s" for t in ends) or "none"))
    return 0


def _models(args: argparse.Namespace) -> int:
    from .bundled import bundled_models, default_model
    from .conditioning import conditioned_delays
    from .loading import KNOWN_MODELS

    default = default_model()
    for name, directory in bundled_models().items():
        config = json.loads((directory / "config.json").read_text())
        served = conditioned_delays(config)
        delay = config["stt_config"]["audio_delay_seconds"]
        delays = (
            "delays " + ", ".join(f"{d:.2f}" for d in served) if served else f"delay {delay:.2f}"
        )
        mark = ", the default" if name == default else ""
        print(f"{name:24s} bundled, {delays} s{mark}  {directory}")
    for name, repo in KNOWN_MODELS.items():
        print(f"{name:24s} hf://{repo}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from .migrate import migrate

    for folder in args.folders:
        changes = migrate(folder)
        print(f"{folder}: " + ("; ".join(changes) if changes else "already in the current layout"))
    return 0


def _random_checkpoint(args: argparse.Namespace) -> int:
    from .architectures import save_random

    out = save_random(args.arch, args.out, seed=args.seed, vad_heads=args.vad)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
