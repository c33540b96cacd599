import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

from dsmlab.train.workers import (
    SPAWN,
    take_fixed_share,
    take_free_cores,
    tied_to_this_process,
    unfinished_jobs,
)

# Each parent starts one worker the way the recipe (its LMs) or the corpus (its chunks) does,
# prints the worker's pid, gives it a long task and waits.
PARENTS = {
    "recipe's ProcessPoolExecutor": (
        "pool = ProcessPoolExecutor(1, SPAWN, **tied_to_this_process())\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 120)\n"
    ),
    "corpus's Pool": (
        "pool = SPAWN.Pool(1, **tied_to_this_process())\n"
        "    print(pool.apply(os.getpid), flush=True)\n"
        "    pool.apply_async(time.sleep, (120,))\n"
    ),
}


@pytest.mark.parametrize("start_worker", PARENTS.values(), ids=PARENTS.keys())
def test_workers_exit_when_their_parent_is_killed(tmp_path, start_worker):
    """A recipe stopped by `kill` must not leave its workers training or rendering on
    (orphans) beside the rerun that resumes their work."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from dsmlab.train.workers import SPAWN, tied_to_this_process\n"
        "if __name__ == '__main__':\n"
        f"    {start_worker}"
        "    time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # an exited child not yet reaped is a zombie
        return stat.read().split(")")[-1].split()[0] != "Z"


def _threads_taken() -> int:
    take_free_cores()
    return torch.get_num_threads()


def test_a_job_takes_its_share_of_the_cores_and_the_last_one_left_takes_them_all():
    """Two trainings of one thread each use two cores; the last one left would use one."""
    left = unfinished_jobs(3)
    with ProcessPoolExecutor(2, SPAWN, **tied_to_this_process(left, 2, cores=6)) as pool:
        assert pool.submit(_threads_taken).result() == 3  # one waits: 6 cores, 2 at work
        left.value = 1
        assert pool.submit(_threads_taken).result() == 6
        # work whose result depends on the thread count takes the share fixed in advance
        assert pool.submit(_fixed_threads).result() == 3


def _fixed_threads() -> int:
    take_fixed_share()
    return torch.get_num_threads()


def test_outside_such_a_pool_the_thread_count_is_left_alone():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        take_free_cores()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
