import json

import pytest

from eval import bench


def test_bench_compares_the_two_loops_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["--model", "random:tiny", "--batch-size", "1", "3", "--seconds", "1.5"]
    assert bench.main(args + ["--realtime", "--max-live", "4", "--out", str(out)]) == 0
    results = json.loads((out / "bench.json").read_text())
    rows = results["rows"]
    assert [r["batch_size"] for r in rows] == [1, 3]
    # tiny: 0.16 s prefix + 1.5 s + 0.24 s delay + 0.5 s margin = 2.4 s = 30 frames per stream
    for row in rows:
        assert row["token_agreement"] == 1.0  # the same tokens, frame for frame
        assert row["streams"] == row["batch_size"]
        assert row["audio_s"] == pytest.approx(1.5 * row["batch_size"])
        assert row["reference_steps"] == row["dsmlab_steps"] == 30  # one batch of equal streams
        ref_wall = row["reference_steps"] / row["reference_steps_per_s"]
        our_wall = row["dsmlab_steps"] / row["dsmlab_steps_per_s"]
        assert row["reference_rtfx"] == pytest.approx(row["audio_s"] / ref_wall, rel=0.02)
        assert row["dsmlab_rtfx"] == pytest.approx(row["audio_s"] / our_wall, rel=0.02)
        assert row["speedup"] == pytest.approx(row["dsmlab_rtfx"] / row["reference_rtfx"], rel=0.02)
    live = results["realtime"]
    assert set(live["step_ms_by_batch"]) <= {"1", "2", "4"}
    assert live["flush_frames_for_0.5s_delay"] == 8
    assert results["environment"]["device"] == "cpu"
    printed = capsys.readouterr().out
    for row in rows:
        assert f"{row['batch_size']:5d}  {row['reference_rtfx']:8.1f}  " in printed


def test_bench_on_a_dataset_batches_its_utterances(tmp_path):
    out = tmp_path / "bench"
    args = ["--model", "random:tiny", "--dataset", "synth", "--max-samples", "5"]
    assert bench.main(args + ["--batch-size", "2", "--out", str(out)]) == 0
    (row,) = json.loads((out / "bench.json").read_text())["rows"]
    assert row["streams"] == 5 and row["token_agreement"] == 1.0
    # the reference pads each batch of 2 to its longest; refilling slots never steps more
    assert row["dsmlab_steps"] <= row["reference_steps"]


def test_bench_errors_are_one_line(tmp_path, capsys):
    assert bench.main(["--model", "random:nope", "--out", str(tmp_path)]) != 0
    error = capsys.readouterr().err.strip()
    assert "unknown architecture 'nope'" in error and "\n" not in error
