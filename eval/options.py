"""The command-line surface every eval script shares: options, their checks, their defaults.

Every option is checked when it is parsed (a bad value is one `error:` line and exit status 2,
before a model is loaded), and every option that changes a record is part of the run's
identity (`record_options`), so a run directory never mixes two settings.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

import dsmlab
from dsmlab import cli
from dsmlab.data import DEFAULT_DATASET, SpeechData, load_data

from . import protocols

DSMLAB_BATCH = 32  # the dsmlab protocol's default batch size, as Kyutai's script batches


def parser(script: str, doc: str | None, several_models: bool = False) -> cli.ArgumentParser:
    """The parser of `python -m eval.<script>` with the shared options."""
    p = cli.ArgumentParser(prog=f"python -m eval.{script}", description=doc)
    if several_models:
        p.add_argument(
            "--model",
            action="append",
            help="a model to evaluate; repeat for several (default: every bundled model)",
        )
    else:
        p.add_argument(
            "--model",
            help="short name, HF repo id or checkpoint dir (default: the bundled model with "
            "the lowest test-split WER in data/models/recipe_report.json)",
        )
    p.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help="alias, HF dataset id or local path (default: 'synth', the bundled test split)",
    )
    p.add_argument("--config", help="dataset config (name)")
    p.add_argument("--split", help="dataset split (default: the alias's, else test)")
    p.add_argument("--text-column", help="transcript column (default: found by name)")
    p.add_argument("--max-samples", type=cli.positive_int, help="only the first N rows")
    p.add_argument("--streaming", action="store_true", help="read the dataset as it goes")
    p.add_argument("--revision", help="dataset revision (hub datasets)")
    p.add_argument(
        "--protocol",
        choices=list(protocols.PROTOCOLS),
        default="dsmlab",
        help="whose padding, batching, scoring and speed conventions (default: dsmlab; kyutai: "
        "Kyutai's evaluation script; oalb: the Open ASR Leaderboard)",
    )
    p.add_argument(
        "--normalizer",
        choices=list(dsmlab.NORMALIZERS),
        help="text normalizer for scoring (default: the protocol's: whisper, or oalb)",
    )
    p.add_argument("--language", default="en", help="en: English normalizer rules; else basic")
    p.add_argument(
        "--batch-size",
        type=cli.positive_int,
        help="streams run together (default: the protocol's: 32, kyutai 32, oalb 64)",
    )
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    add_threads(p)
    p.add_argument(
        "--out", type=Path, help="run directory, resumable (default: runs/<script>-<model>)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete what an earlier run wrote into --out before starting",
    )
    return p


def add_threads(p: cli.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=cli.positive_int,
        help="CPU threads for torch (default: torch's, one per core; on a shared or small "
        "machine 1 or 2 is often faster)",
    )


def apply_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)


def eval_data(args: argparse.Namespace, rank: int = 0, world: int = 1) -> SpeechData:
    """The dataset the shared options name (this rank's shard under torchrun)."""
    return load_data(
        args.dataset,
        args.config,
        args.split,
        args.text_column,
        args.max_samples,
        args.streaming,
        args.revision,
        rank,
        world,
    )


def record_options(args: argparse.Namespace) -> dict:
    """The options that change what a record holds: part of the run's identity. The batch size
    changes records only under a static protocol (each batch is padded to its longest)."""
    protocol = protocols.get(args.protocol)
    found = {"language": args.language, "normalizer": args.normalizer, "protocol": protocol.name}
    if protocol.static_batch:
        found["batch_size"] = args.batch_size
    return found


def scoring(args: argparse.Namespace) -> tuple[Callable[[str], str], bool]:
    """(the normalizer, whether split compounds merge): how a run scores text."""
    return dsmlab.get_normalizer(args.normalizer, args.language), args.normalizer == "oalb"


def fill_defaults(args: argparse.Namespace, script: str, several: bool = False) -> None:
    """--model and --out when not given: the offline default; the protocol's normalizer and
    batch size when those are not given."""
    apply_threads(args)
    protocol = protocols.get(getattr(args, "protocol", "dsmlab"))
    if getattr(args, "normalizer", "") is None:
        args.normalizer = protocol.normalizer
    if getattr(args, "batch_size", 0) is None:
        args.batch_size = protocol.static_batch or DSMLAB_BATCH
    if not args.model:
        bundled = list(dsmlab.bundled_models())
        if not bundled:
            raise dsmlab.DSMLabError("no bundled models are installed: pass --model")
        args.model = dsmlab.bundled_runs() if several else dsmlab.default_model()
    if args.out is None:
        name = script if several else f"{script}-{Path(str(args.model)).name}"
        args.out = Path("runs") / name
