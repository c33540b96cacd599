"""Fault injection: a run killed with SIGKILL at random points, its last record sometimes torn,
then resumed, ends with the results of a run never interrupted, no row lost or doubled."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from evaldata import save_to_disk

ROOT = Path(__file__).resolve().parent.parent
KILLS = 10
ROWS = 40
ENV = {"NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def comparable(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("speed", "created", "command", "command_line"):
        results.pop(key)
    results["environment"].pop("git_commit")
    return results


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_equals_an_uninterrupted_run(tiny_novad_dir, tmp_path):
    data = save_to_disk(tmp_path / "ds", n=ROWS)
    command = [sys.executable, "-m", "eval.wer", "--model", str(tiny_novad_dir)]
    command += ["--dataset", data, "--batch-size", "2"]
    env = os.environ | ENV

    def start(out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [*command, "--out", str(out)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    whole = tmp_path / "whole"
    began = time.perf_counter()
    assert start(whole).wait() == 0
    duration = time.perf_counter() - began  # kill times scale with this machine's speed

    rng = random.Random(20261124)
    killed, records = tmp_path / "killed", tmp_path / "killed" / "utterances.jsonl"

    def tear() -> int:
        """Cut the last record part-way, as a kill during its write would."""
        data_bytes = records.read_bytes()
        last = data_bytes.rstrip(b"\n").rfind(b"\n") + 1
        if len(data_bytes) - last <= 2:
            return 0
        records.write_bytes(data_bytes[: rng.randrange(last + 1, len(data_bytes) - 1)])
        return 1

    kills, torn = 0, 0
    while kills < KILLS:
        proc = start(killed)
        time.sleep(rng.uniform(0.1, 0.6) * duration)  # loading, claiming or transcribing
        if proc.poll() is not None:
            break  # it finished before this kill: the run is done
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if records.exists() and rng.random() < 0.5:
            torn += tear()
    assert kills >= 3 and records.exists()  # KILLS, unless a resumed run ended first
    torn += tear() if torn == 0 else 0
    assert torn > 0
    assert start(killed).wait() == 0

    assert comparable(killed) == comparable(whole)
    lines = records.read_text().splitlines()
    indices = [json.loads(line)["index"] for line in lines]
    assert sorted(indices) == list(range(ROWS))  # every row once: none lost, none doubled
    whole_lines = (whole / "utterances.jsonl").read_text().splitlines()
    by_index = {json.loads(line)["index"]: json.loads(line) for line in whole_lines}
    assert {i: json.loads(line) for i, line in zip(indices, lines, strict=True)} == by_index
