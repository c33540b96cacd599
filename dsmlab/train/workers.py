"""Spawned worker processes that exit when the process that started them dies.

A recipe stopped by `kill` (Ctrl-C reaches the whole process group, `kill` only the parent)
would otherwise leave its workers rendering or training on, unseen, beside the rerun that
resumes their work and writes the same files.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch state
PARENT_POLL_S = 1.0  # how often a worker checks that its parent still runs


def tied_to_this_process() -> dict:
    """Keyword arguments for `SPAWN.Pool` or `ProcessPoolExecutor`: their workers then exit
    when this process dies."""
    return {"initializer": _exit_with_parent, "initargs": (os.getpid(),)}


def _exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
