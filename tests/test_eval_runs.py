import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from evaldata import TORCHRUN, jsonl_with_files, rank_failures, rows, save_to_disk

import dsmlab
from dsmlab.data import load_data
from eval import report, runner, wer

ROOT = Path(__file__).resolve().parent.parent


def empty_parquet(path):
    path.mkdir()
    datasets.Dataset.from_list(rows(1)).select([]).to_parquet(str(path / "empty.parquet"))
    return str(path / "empty.parquet")


def results_without_timing(run_dir):
    results = json.loads((Path(run_dir) / "results.json").read_text())
    for key in ("speed", "created", "command", "command_line"):
        results.pop(key)
    results["environment"].pop("git_commit")
    return results


def test_wer_run_writes_records_results_and_plot(tiny_novad_dir, tmp_path, capsys):
    data = save_to_disk(tmp_path / "ds", n=6, broken=(3,))
    out = tmp_path / "run"
    assert (
        wer.main(
            [
                "--model",
                str(tiny_novad_dir),
                "--dataset",
                data,
                "--out",
                str(out),
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records) == list(range(6))
    failed = [r for r in records if r["status"] == "failed"]
    assert [r["id"] for r in failed] == ["utt3"] and "row utt3: cannot decode" in failed[0]["error"]
    ok = [r for r in records if r["status"] == "ok"]
    normalize = dsmlab.get_normalizer("whisper", "en")
    words = [w for r in ok for w in r["words"]]
    assert words, "the random model must emit some words"
    for r in ok:
        assert r["ref_norm"] == "hello world again"
        assert r["hyp_norm"] == normalize(r["hypothesis"])
        assert r["wer"] == pytest.approx(dsmlab.utterance_wer(r["ref_norm"], r["hyp_norm"]))
        assert r["audio_s"] == pytest.approx(1.0 + 0.25 * (r["index"] % 4))
    assert all(set(w) == {"word", "start", "end", "emitted", "confidence"} for w in words)
    assert all(0 <= w["confidence"] <= 1 for w in words)
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["utterances"] == 5 and results["metrics"]["failed"] == 1
    assert results["metrics"]["corpus_wer"] == pytest.approx(
        dsmlab.error_rates([r["ref_norm"] for r in ok], [r["hyp_norm"] for r in ok])["corpus_wer"]
    )
    assert results["model"]["delay_s"] == 0.24
    assert results["data"]["split"] == "test"
    assert results["environment"]["packages"]["moshi"] == "0.2.13"
    speed = results["speed"]
    assert speed["audio_s_this_run"] == pytest.approx(sum(r["audio_s"] for r in ok), abs=1e-3)
    assert speed["rtfx"] == pytest.approx(speed["audio_s_this_run"] / speed["compute_s_this_run"])
    assert (out / "wer_histogram.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert f"{'corpus_wer':32s} {results['metrics']['corpus_wer']:.4f}" in printed


def test_resume_after_a_killed_run_gives_the_same_results(tiny_novad_dir, tmp_path, monkeypatch):
    data = save_to_disk(tmp_path / "ds", n=7)
    args = ["--model", str(tiny_novad_dir), "--dataset", data, "--batch-size", "2"]
    assert wer.main([*args, "--out", str(tmp_path / "whole")]) == 0

    real_record, written = runner.utterance_record, []

    def dies_after_three(*a, **k):
        if len(written) == 3:
            raise KeyboardInterrupt  # as a kill would, mid-run
        written.append(1)
        return real_record(*a, **k)

    monkeypatch.setattr(runner, "utterance_record", dies_after_three)
    killed = tmp_path / "killed"
    assert wer.main([*args, "--out", str(killed)]) == 130
    lines = (killed / "utterances.jsonl").read_text().splitlines()
    assert len(lines) == 3 and not (killed / "results.json").exists()
    with (killed / "utterances.jsonl").open("a") as f:
        f.write('{"index": 6, "id": "utt6", "sta')  # a line cut by the kill
    monkeypatch.setattr(runner, "utterance_record", real_record)
    assert wer.main([*args, "--out", str(killed)]) == 0
    assert results_without_timing(killed) == results_without_timing(tmp_path / "whole")
    assert results_without_timing(killed)["metrics"]["utterances"] == 7


def test_local_layouts_load(tmp_path):
    jsonl = load_data(jsonl_with_files(tmp_path / "j"))
    assert jsonl.text_column == "sentence" and [u.audio.shape[0] for u in jsonl] == [24000] * 3
    datasets.Dataset.from_list(rows(2)).to_parquet(str(tmp_path / "d.parquet"))
    parquet = load_data(str(tmp_path / "d.parquet"))
    assert [u.id for u in parquet] == ["utt0", "utt1"]
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, row in enumerate(rows(2)):
        (folder / f"{i}.wav").write_bytes(row["audio"]["bytes"])
    (folder / "metadata.csv").write_text("file_name,transcription\n0.wav,hi there\n1.wav,yes\n")
    audiofolder = load_data(str(folder), split="train")
    assert sorted(u.text for u in audiofolder) == ["hi there", "yes"]
    streamed = load_data(save_to_disk(tmp_path / "s", n=3), streaming=True, max_samples=2)
    assert [u.index for u in streamed] == [0, 1] and streamed.size is None
    everything = load_data(str(tmp_path / "s"), max_samples=10)  # more than it holds: all
    assert [u.index for u in everything] == [0, 1, 2] and everything.size == 3


@pytest.mark.parametrize(
    ("make", "extra", "message", "status"),
    [
        (
            lambda p: save_to_disk(p, n=2),
            ["--text-column", "nope"],
            "no column 'nope'; the columns are id, audio, text, words, speaker_id",
            2,
        ),
        (lambda p: "not-an-alias", [], "unknown dataset 'not-an-alias'", 2),
        (lambda p: empty_parquet(p), [], "has no rows", 1),
    ],
)
def test_bad_inputs_get_one_line(make, extra, message, status, tiny_novad_dir, tmp_path, capsys):
    data = make(tmp_path / "ds")
    capsys.readouterr()
    code = wer.main(
        ["--model", str(tiny_novad_dir), "--dataset", data, "--out", str(tmp_path / "o"), *extra]
    )
    err = capsys.readouterr().err  # may hold datasets' own progress bars before our line
    last = err.rstrip("\n").split("\n")[-1]
    assert code == status and last.startswith("error: ") and message in last
    assert err.count("error") == 1 and "Traceback" not in err


def test_missing_transcript_column_lists_the_columns(tmp_path):
    table = [{k: v for k, v in r.items() if k != "text"} for r in rows(2)]
    datasets.Dataset.from_list(table).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(Exception, match="no transcript column.*the columns are id, audio, words"):
        load_data(str(tmp_path / "ds"))


def test_report_escapes_transcripts(tiny_novad_dir, tmp_path):
    data = save_to_disk(tmp_path / "ds", n=2, text="<script>alert(1)</script> hi")
    run_dir = tmp_path / "run"
    assert wer.main(["--model", str(tiny_novad_dir), "--dataset", data, "--out", str(run_dir)]) == 0
    assert report.main([str(run_dir), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "report.html").read_text()
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in md and "data:image/png;base64," in page
    assert "python -m eval.wer" in page


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(tiny_novad_dir, tmp_path):
    data = save_to_disk(tmp_path / "ds", n=5, broken=(2,))
    args = [
        "-m",
        "eval.wer",
        "--model",
        str(tiny_novad_dir),
        "--dataset",
        data,
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ]
    env = os.environ | {"NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, *args, "--out", str(tmp_path / "one")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run(
        [*TORCHRUN, *args, "--out", str(tmp_path / "two")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert double.returncode == 0, rank_failures(double.stderr)
    assert results_without_timing(tmp_path / "two") == results_without_timing(tmp_path / "one")
    one = (tmp_path / "one" / "utterances.jsonl").read_text().splitlines()
    two = (tmp_path / "two" / "utterances.jsonl").read_text().splitlines()
    assert sorted(one) == sorted(two) and len(two) == 5
    assert not list((tmp_path / "two").glob("utterances.rank*.jsonl"))
    assert json.loads((tmp_path / "two" / "results.json").read_text())["speed"]["processes"] == 2


def test_report_reads_like_a_results_section(tiny_novad_dir, tmp_path):
    data = save_to_disk(tmp_path / "ds", n=3)
    run_dir = tmp_path / "run"
    assert wer.main(["--model", str(tiny_novad_dir), "--dataset", data, "--out", str(run_dir)]) == 0
    assert report.main([str(run_dir), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    summary = json.loads((run_dir / "results.json").read_text())
    wer_value, (low, high) = summary["metrics"]["corpus_wer"], summary["metrics"]["corpus_wer_ci95"]
    headline = md.index("## Results")
    # the headline table first, with the WER and its interval as percentages and the device
    assert headline < md.index("## Figures") < md.index("## Details") < md.index("## Every")
    first_row = md[headline:].split("\n| ")[3]  # after the header and its rule
    assert f"{100 * wer_value:.1f}% [{100 * low:.1f}, {100 * high:.1f}]" in first_row
    assert "cpu (" in first_row and "thread" in first_row
    # the speed's definition says where it was measured, and no warm-up ran on the CPU
    assert summary["speed"]["definition"].endswith("on cpu, no warm-up")
    assert md.index("| corpus_wer |") > md.index("## Every recorded figure")  # raw dump last
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "name='viewport'" in page and "class='scroll'" in page  # narrow windows scroll tables


def test_eval_wer_scores_the_words_a_dataset_marks_as_needing_right_context(
    tiny_novad_dir, tmp_path
):
    # "world," in "Hello world, again!", spoken like "whirled"
    table = [r | {"lookahead": [1], "homophones": [["world", "whirled"]]} for r in rows(3)]
    datasets.Dataset.from_list(table).save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "run"
    assert wer.main(["--model", str(tiny_novad_dir), "--dataset", str(tmp_path / "ds"),
                     "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "results.json").read_text())["metrics"]
    assert summary["lookahead_words"] == 3 and summary["lookahead_utterances"] == 3
    assert 0 <= summary["lookahead_accuracy"] <= 1 and "other_wer_ci95" in summary
    assert summary["lookahead_heard"] >= summary["lookahead_accuracy"] * 3
    documented = (Path(wer.__file__).parent / "METRICS.md").read_text()
    assert all(f"`{k.removesuffix('_ci95')}`" in documented for k in summary)
