"""One exception type for mistakes a user can fix; the CLIs print it as one line."""

import os
import sys
from collections.abc import Callable


class DSMLabError(Exception):
    """A user-facing error: the message says what is wrong and what to do about it."""


def run_cli(body: Callable[[], int]) -> int:
    """Run a command-line body: a DSMLabError becomes `error: ...` on stderr and exit code 2,
    Ctrl-C exit code 130, a closed output pipe (`| head`) a quiet exit."""
    try:
        return body()
    except DSMLabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerunning the same command resumes where it can", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep Python quiet at exit
        return 0
