"""The edge of every command line: one-line errors, exit statuses, `--debug`, checked options.

Every dsmlab and eval command parses with `ArgumentParser` and runs its body through `run_cli`:
- a bad option value or a usage mistake: `error: ...` on stderr, exit status 2;
- any other failure (`DSMLabError`, out of memory, a bug): `error: ...`, exit status 1;
- Ctrl-C: 130; a closed output pipe (`| head`): a quiet 0;
- `--debug` (or DSMLAB_DEBUG=1) adds the traceback above the error line.

Under torchrun, `torchrun_rank` starts the process group a command needs and `run_cli` leaves
it when the body ends, however it ends.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
from collections.abc import Callable

import torch
import torch.distributed as dist

from .errors import DSMLabError, UsageError

DEBUG_ENV = "DSMLAB_DEBUG"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a `--debug` flag and one-line errors (exit 2) instead of usage dumps.
    A parser whose subcommands take the flag is built with `debug_flag=False`."""

    def __init__(self, *args, debug_flag: bool = True, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        if debug_flag:
            self.add_argument(
                "--debug", action="store_true", help=f"show tracebacks (or set {DEBUG_ENV}=1)"
            )

    def error(self, message: str):  # noqa: D102 - argparse's hook
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def run_cli(body: Callable[[], int], debug: bool = False) -> int:
    """Run a command's body; every failure becomes one `error:` line and an exit status."""
    try:
        return _run(body, debug)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def torchrun_rank() -> tuple[int, int]:
    """(rank, world size) under torchrun, its process group started (nccl on CUDA, gloo on
    CPU); (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), world


def _run(body: Callable[[], int], debug: bool) -> int:
    debug = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return body()
    except KeyboardInterrupt:
        print("interrupted: rerunning the same command resumes where it can", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep Python quiet at exit
        return 0
    except Exception as e:  # the edge: nothing a user can cause leaves as a traceback
        if debug:
            traceback.print_exc()
        print(f"error: {describe(e)}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1


def describe(error: BaseException) -> str:
    """The one line for an error; unexpected ones say how to see more."""
    if isinstance(error, DSMLabError):
        return str(error)
    if isinstance(error, torch.OutOfMemoryError):
        return "out of device memory: lower --batch-size, or use a smaller model or dtype"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return (
        f"unexpected {type(error).__name__}{': ' + text if text else ''} "
        f"(rerun with --debug or {DEBUG_ENV}=1 for the traceback)"
    )


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def probability(text: str) -> float:
    """A threshold in (0, 1]."""
    value = _number(text, float, "a number")
    if not 0.0 < value <= 1.0:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _number(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
