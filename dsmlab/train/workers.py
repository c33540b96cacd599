"""Spawned worker processes that exit when the process that started them dies, and share the
cores among the jobs still to finish.

A recipe stopped by `kill` (Ctrl-C reaches the whole process group, `kill` only the parent)
would otherwise leave its workers rendering or training on, unseen, beside the rerun that
resumes their work and writes the same files.

Jobs of one thread each use two cores well while two run; the last one left would use one
core of two for the half hour it trains alone. So a pool may share a count of its unfinished
jobs with its workers (`unfinished_jobs`), and each LM training step takes its job's share of
the cores (`take_free_cores`): the last job running takes them all. The thread count changes
how fast the LM trains, not the weights it ends with; it does change the last bits of the VAD
round's (its reductions), which therefore runs on a share fixed in advance, cores // workers
(`take_fixed_share`), so a recipe gives the same weights however its jobs were timed
(tests/test_recipe.py).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import torch

SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch state
PARENT_POLL_S = 1.0  # how often a worker checks that its parent still runs


_share = None  # in a worker given `unfinished_jobs`: (that count, workers, cores)
_threads = 0  # the thread count take_free_cores last set


def tied_to_this_process(unfinished=None, workers: int = 1, cores: int | None = None) -> dict:
    """Keyword arguments for `SPAWN.Pool` or `ProcessPoolExecutor`: their workers then exit
    when this process dies. With `unfinished` (`unfinished_jobs`), a pool of `workers` shares
    `cores` (default: this machine's) among its unfinished jobs (`take_free_cores`)."""
    cores = cores or os.cpu_count() or 1
    return {"initializer": _start_worker, "initargs": (os.getpid(), unfinished, workers, cores)}


def unfinished_jobs(count: int):
    """A count shared with a pool's workers (`tied_to_this_process`); the parent lowers it by
    one as each job finishes."""
    return SPAWN.Value("i", count)


def take_free_cores() -> None:
    """In a worker sharing its pool's unfinished jobs: set torch's threads to this job's share
    of the cores, cores // min(unfinished jobs, workers); elsewhere nothing. Cheap enough to
    call every step."""
    if _share is not None:
        _take_share_of(_share[0].value)


def take_fixed_share() -> None:
    """In such a worker: set torch's threads to cores // workers whatever the others do, for
    work whose result depends on the thread count; elsewhere nothing."""
    if _share is not None:
        _take_share_of(_share[1])


def _take_share_of(jobs: int) -> None:
    global _threads
    _, workers, cores = _share
    threads = max(1, cores // max(1, min(jobs, workers)))
    if threads != _threads:
        torch.set_num_threads(threads)
        _threads = threads


def _start_worker(parent: int, unfinished, workers: int, cores: int) -> None:
    global _share
    _exit_with_parent(parent)
    if unfinished is not None:
        _share = (unfinished, workers, cores)


def _exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
