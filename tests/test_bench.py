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
    for row in rows:
        assert row["token_agreement"] == 1.0  # the same tokens, frame for frame
        assert row["streams"] == row["batch_size"]
        assert row["audio_s"] == pytest.approx(1.5 * row["batch_size"])
        assert row["reference_rtfx"] > 0 and row["dsmlab_rtfx"] > 0
        assert row["speedup"] == pytest.approx(row["dsmlab_rtfx"] / row["reference_rtfx"], rel=0.02)
    live = results["realtime"]
    assert set(live["step_ms_by_batch"]) <= {"1", "2", "4"}
    assert live["flush_frames_for_0.5s_delay"] == 8
    assert results["environment"]["device"] == "cpu"
    assert "speedup" in capsys.readouterr().out


def test_bench_on_a_dataset_batches_its_utterances(tmp_path):
    out = tmp_path / "bench"
    args = ["--model", "random:tiny", "--dataset", "synth", "--max-samples", "5"]
    assert bench.main(args + ["--batch-size", "2", "--out", str(out)]) == 0
    (row,) = json.loads((out / "bench.json").read_text())["rows"]
    assert row["streams"] == 5 and row["token_agreement"] == 1.0


def test_bench_errors_are_one_line(tmp_path, capsys):
    assert bench.main(["--model", "random:nope", "--out", str(tmp_path)]) != 0
    error = capsys.readouterr().err.strip()
    assert "unknown architecture 'nope'" in error and "\n" not in error
