"""eval.compare: the paired difference between two runs on the same utterances."""

import json

import pytest

from eval import compare, wer

SAMPLES = ["--max-samples", "8", "--batch-size", "4"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    for model in ("synth-d2", "synth-d16"):
        assert wer.main(["--model", model, *SAMPLES, "--out", str(root / model)]) == 0
    return root / "synth-d2", root / "synth-d16"


def corpus_wer(run_dir):
    return json.loads((run_dir / "results.json").read_text())["metrics"]["corpus_wer"]


def test_the_difference_is_the_two_runs_wers_apart_and_inside_its_interval(two_runs, capsys):
    short, long = two_runs
    found = compare.compare(short, long)
    assert found["utterances"] == 8
    assert found["corpus_wers"] == pytest.approx([corpus_wer(short), corpus_wer(long)], abs=1e-6)
    difference = corpus_wer(long) - corpus_wer(short)
    assert found["corpus_wer_difference"] == pytest.approx(difference, abs=1e-6)
    low, high = found["ci95"]
    assert low <= found["corpus_wer_difference"] <= high and low < high
    assert found["real"] == (low > 0 or high < 0)
    assert compare.main([str(short), str(long), str(short)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "(synth-d16) against" in lines[0]
    assert "+0.00 points, 95% CI [+0.00, +0.00] (within noise, 8 utterances)" in lines[1]


def test_runs_on_other_utterances_or_normalizers_are_refused_in_one_line(
    two_runs, tmp_path, capsys
):
    short, long = two_runs
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text((long / "results.json").read_text())
    records = [json.loads(line) for line in (long / "utterances.jsonl").read_text().splitlines()]
    records[3]["reference"] = "Another sentence."
    (other / "utterances.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert compare.main([str(short), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not on the same utterances" in err

    results = json.loads((long / "results.json").read_text())
    results["definitions"]["normalizer"] = "none"
    (other / "results.json").write_text(json.dumps(results))
    assert compare.main([str(short), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--normalizer" in err
