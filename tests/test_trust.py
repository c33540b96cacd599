"""Runs you can trust: a run directory never mixes runs, every bad input or fault is one line,
and nothing computed is lost."""

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from evaldata import rows, save_to_disk, wav_bytes

from dsmlab.__main__ import main as dsmlab_main
from dsmlab.data import load_data
from eval import report, rundir, sweep, timestamps, wer
from eval.records import read_records

ROOT = Path(__file__).resolve().parent.parent


def one_line(capsys, code, status, *parts):
    """The command failed with `status`, one `error:` line holding `parts`, no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "examples/s]" not in line]
    assert code == status, err
    assert lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert sum(line.startswith("error: ") for line in lines) == 1
    for part in parts:
        assert part in lines[-1], lines[-1]
    return lines[-1]


def records_of(out):
    return {r["index"]: r for r in read_records(out, warn=False)}


@pytest.fixture
def data(tmp_path):
    return save_to_disk(tmp_path / "ds", n=4)


def wer_run(model, data, out, *extra):
    return wer.main(["--model", str(model), "--dataset", data, "--out", str(out), *extra])


# --- the run directory: identity, resume, lock ---


def test_resume_refuses_a_run_of_another_model_dataset_or_option(
    tiny_novad_dir, data, tmp_path, capsys
):
    out = tmp_path / "run"
    assert wer_run(tiny_novad_dir, data, out) == 0
    before = (out / "utterances.jsonl").read_text()
    other_model = tmp_path / "other-model"
    shutil.copytree(tiny_novad_dir, other_model)
    config = json.loads((other_model / "config.json").read_text())
    config["stt_config"]["audio_delay_seconds"] = 0.32
    (other_model / "config.json").write_text(json.dumps(config))
    other_data = save_to_disk(tmp_path / "ds2", n=5)
    cases = [
        (other_model, data, [], f"model.name: {tiny_novad_dir.name} -> other-model"),
        (tiny_novad_dir, other_data, [], "dataset.dataset: "),
        (tiny_novad_dir, data, ["--split", "validation"], "dataset.split: test -> validation"),
        (tiny_novad_dir, data, ["--max-samples", "2"], "dataset.max_samples: absent -> 2"),
        (tiny_novad_dir, data, ["--language", "fr"], "options.language: en -> fr"),
    ]
    for model, dataset, extra, difference in cases:
        capsys.readouterr()
        code = wer_run(model, dataset, out, *extra)
        one_line(capsys, code, 2, "holds another run", difference, "--overwrite")
    assert (out / "utterances.jsonl").read_text() == before  # nothing was written

    assert wer_run(other_model, data, out, "--overwrite") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["model"] == "other-model" and results["metrics"]["utterances"] == 4


def test_the_same_run_resumes_without_redoing_anything(tiny_novad_dir, data, tmp_path):
    out = tmp_path / "run"
    assert wer_run(tiny_novad_dir, data, out) == 0
    first = (out / "utterances.jsonl").read_text()
    assert wer_run(tiny_novad_dir, data, out) == 0
    assert (out / "utterances.jsonl").read_text() == first
    assert json.loads((out / "results.json").read_text())["speed"]["audio_s_this_run"] == 0


def test_a_second_run_into_a_locked_directory_refuses_at_once(
    tiny_novad_dir, data, tmp_path, capsys
):
    out = tmp_path / "run"
    out.mkdir()
    with rundir.locked(out):
        code = wer_run(tiny_novad_dir, data, out)
    one_line(capsys, code, 2, "another run is writing into", "another --out")
    assert not list(out.glob("utterances*.jsonl")) and not (out / "run.json").exists()
    assert wer_run(tiny_novad_dir, data, out) == 0  # released: the next run goes ahead


def test_records_of_an_older_dsmlab_are_not_adopted(tiny_novad_dir, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert wer_run(tiny_novad_dir, data, out) == 0
    (out / "run.json").unlink()
    one_line(capsys, wer_run(tiny_novad_dir, data, out), 2, "without run.json", "--overwrite")
    (out / "run.json").write_text("{cut")
    one_line(capsys, wer_run(tiny_novad_dir, data, out), 2, "run.json is unreadable")


# --- bad inputs: one line, before any work ---

CHECKPOINT_FAULTS = {
    "truncated": (lambda d: _cut(d / "model.safetensors"), "not a readable safetensors file"),
    "corrupt": (
        lambda d: (d / "model.safetensors").write_bytes(b"x" * 5000),
        "not a readable safetensors file",
    ),
    "mimi-json": (lambda d: (d / "mimi_config.json").write_text("{no"), "is not valid JSON"),
    "mimi-keys": (
        lambda d: (d / "mimi_config.json").write_text('{"sample_rate": 24000}'),
        "the Mimi config lacks channels",
    ),
    "moshi-name": (lambda d: _config(d, moshi_name=5), "moshi_name is 5; it must be a file name"),
    "negative-delay": (
        lambda d: _config(d, stt_config={"audio_delay_seconds": -1}),
        "audio_delay_seconds is -1; it must be a number of seconds >= 0",
    ),
    "text-delay": (
        lambda d: _config(d, stt_config={"audio_delay_seconds": "abc"}),
        "audio_delay_seconds is 'abc'",
    ),
}


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _config(directory, **changes):
    config = json.loads((directory / "config.json").read_text()) | changes
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("fault", sorted(CHECKPOINT_FAULTS))
def test_a_broken_checkpoint_is_one_line(fault, tiny_dir, tmp_path, capsys):
    broken = tmp_path / fault
    shutil.copytree(tiny_dir, broken)
    damage, message = CHECKPOINT_FAULTS[fault]
    damage(broken)
    wav = tmp_path / "a.wav"
    wav.write_bytes(wav_bytes(0.5, seed=1))
    code = dsmlab_main(["transcribe", str(wav), "--model", str(broken)])
    one_line(capsys, code, 1, message)
    data = save_to_disk(tmp_path / "ds", n=2)
    one_line(capsys, wer_run(broken, data, tmp_path / "run"), 1, message)
    assert not list((tmp_path / "run").glob("utterances*.jsonl"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "meta"], "device 'meta' is not supported"),
        (["--vad", "--vad-hold", "0"], "argument --vad-hold: must be at least 1, got 0"),
        (["--vad", "--vad-threshold", "nan"], "argument --vad-threshold: must be in (0, 1]"),
        (["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    ],
)
def test_bad_transcribe_options_are_one_line(argv, message, tiny_dir, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    wav.write_bytes(wav_bytes(0.5, seed=1))
    code = exit_status(dsmlab_main, ["transcribe", str(wav), "--model", str(tiny_dir), *argv])
    one_line(capsys, code, 2, message)


def exit_status(main, argv) -> int:
    """A CLI's exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        (wer, ["--max-samples", "-1"], "argument --max-samples: must be at least 1, got -1"),
        (wer, ["--batch-size", "x"], "argument --batch-size: expected a whole number, got 'x'"),
        (timestamps, ["--collar", "-1"], "argument --collar: must be a finite number >= 0"),
        (timestamps, ["--collar", "inf"], "argument --collar: must be a finite number >= 0"),
    ],
)
def test_bad_eval_options_are_one_line(script, argv, message, capsys):
    one_line(capsys, exit_status(script.main, argv), 2, message)


def test_an_out_that_cannot_be_written_is_refused_before_any_work(
    tiny_novad_dir, data, tmp_path, capsys
):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    one_line(capsys, wer_run(tiny_novad_dir, data, a_file), 2, "is a file, not a directory")
    under = a_file / "run"
    one_line(capsys, wer_run(tiny_novad_dir, data, under), 2, "cannot be written")


def test_a_run_refused_before_any_work_leaves_no_directory(tiny_novad_dir, data, tmp_path, capsys):
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    out = tmp_path / "runs" / "wer"
    one_line(capsys, wer_run(not_a_model, data, out), 1, "not-a-model")
    assert not out.exists()
    argv = ["--model", str(not_a_model), "--dataset", data, "--out", str(tmp_path / "sweep")]
    one_line(capsys, sweep.main(argv), 1, "not-a-model")
    assert not (tmp_path / "sweep").exists()
    kept = tmp_path / "kept"  # a directory the user made is theirs: refused, it stays
    kept.mkdir()
    one_line(capsys, wer_run(not_a_model, data, kept), 1, "not-a-model")
    assert kept.is_dir()
    missing = str(tmp_path / "missing.jsonl")  # the model loads, the dataset does not
    one_line(capsys, wer_run(tiny_novad_dir, missing, out), 1, "missing.jsonl")
    assert not out.exists()


def test_an_empty_dataset_is_one_line(tiny_novad_dir, tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    for extra in ([], ["--streaming"]):
        code = wer_run(tiny_novad_dir, str(tmp_path / "empty.jsonl"), tmp_path / "r", *extra)
        one_line(capsys, code, 1, "has no rows")


def test_debug_adds_the_traceback_and_keeps_the_line(tiny_dir, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    wav.write_bytes(wav_bytes(0.5, seed=1))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    _cut(broken / "model.safetensors")
    code = dsmlab_main(["transcribe", str(wav), "--model", str(broken), "--debug"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("error: broken: ")


def test_an_unexpected_failure_is_one_line_that_says_how_to_see_more(
    tiny_novad_dir, data, tmp_path, capsys, monkeypatch
):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("eval.metrics.wer_metrics", broken)
    code = wer_run(tiny_novad_dir, data, tmp_path / "run")
    one_line(capsys, code, 1, "unexpected ZeroDivisionError: a bug", "--debug")
    assert len(records_of(tmp_path / "run")) == 4  # the transcripts are kept for the rerun


# --- bad rows are failed rows; faults in the records file ---


def test_bad_rows_are_failed_rows_with_reasons_and_are_retried(tiny_novad_dir, tmp_path):
    table = rows(4)
    table[1]["words"] = [{"word": "x", "start": None, "end": 1.0}]
    table[2]["words"] = [{"word": "y", "start": 2.0, "end": 1.0}]
    datasets.Dataset.from_list(table).save_to_disk(str(tmp_path / "bad-words"))
    out = tmp_path / "ts"
    args = ["--model", str(tiny_novad_dir), "--dataset", str(tmp_path / "bad-words")]
    assert timestamps.main([*args, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["failed"] == 2 and results["metrics"]["utterances"] == 2
    assert [f["id"] for f in results["failures"]["first"]] == ["utt1", "utt2"]
    assert "words cell: entry 0" in results["failures"]["first"][0]["error"]

    clips = tmp_path / "j"
    (clips / "clips").mkdir(parents=True)
    lines = []
    for i in range(3):
        (clips / "clips" / f"{i}.wav").write_bytes(wav_bytes(1.0, seed=30 + i))
        lines.append(json.dumps({"audio": f"clips/{i}.wav", "sentence": "hello world"}))
    lines[1] = lines[1][:25]  # a cut line
    lines.insert(2, json.dumps({"audio": 7, "sentence": "hi"}))
    (clips / "data.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "jl"
    data = str(clips / "data.jsonl")
    assert wer_run(tiny_novad_dir, data, out) == 0
    found = records_of(out)
    assert [found[i]["status"] for i in range(4)] == ["ok", "failed", "failed", "ok"]
    assert found[1]["error"].startswith("malformed JSON line")
    assert found[2]["error"] == "'audio' must be an audio file path, got 7"
    results = json.loads((out / "results.json").read_text())
    assert results["failures"]["count"] == 2 and results["metrics"]["utterances"] == 2


def test_a_failed_row_is_retried_on_the_next_run(tiny_novad_dir, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    good = wav_bytes(1.0, seed=5)
    (folder / "a.wav").write_bytes(good)
    (folder / "b.wav").write_bytes(good[: len(good) // 2])  # truncated: a failed row
    (folder / "metadata.csv").write_text("file_name,text\na.wav,hello\nb.wav,world\n")
    out = tmp_path / "run"
    args = ["--split", "train"]
    assert wer_run(tiny_novad_dir, str(folder), out, *args) == 0
    assert records_of(out)[1]["error"].endswith("download or encode it again")
    (folder / "b.wav").write_bytes(good)  # the file is fixed; nothing else changed
    assert wer_run(tiny_novad_dir, str(folder), out, *args) == 0
    assert [r["status"] for r in records_of(out).values()] == ["ok", "ok"]


def test_junk_and_cut_lines_in_the_records_are_skipped_and_redone(
    tiny_novad_dir, data, tmp_path, capsys
):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert wer_run(tiny_novad_dir, data, whole) == 0
    assert wer_run(tiny_novad_dir, data, broken) == 0
    lines = (broken / "utterances.jsonl").read_text().splitlines()
    lines[1] = lines[1][:30]  # a cut line in the middle
    lines[2] = "{}"  # junk
    lines.append('{"index": 3, "status": "ok"}')  # a record with its fields missing
    (broken / "utterances.jsonl").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert wer_run(tiny_novad_dir, data, broken) == 0
    err = capsys.readouterr().err
    assert "skipped 3 unreadable line(s) (2, 3, 5); their utterances are redone" in err
    texts = {i: r["hypothesis"] for i, r in records_of(whole).items()}
    assert {i: r["hypothesis"] for i, r in records_of(broken).items()} == texts
    assert (
        json.loads((broken / "results.json").read_text())["metrics"]
        == json.loads((whole / "results.json").read_text())["metrics"]
    )


def test_a_corrupt_results_file_is_one_line(tiny_novad_dir, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert wer_run(tiny_novad_dir, data, out) == 0
    (out / "results.json").write_text("{corrupt")
    code = report.main([str(out), "--out", str(tmp_path / "report")])
    one_line(capsys, code, 1, "results.json is corrupt", "rerun the command")
    assert wer_run(tiny_novad_dir, data, out) == 0  # the rerun rewrites it from the records
    assert report.main([str(out), "--out", str(tmp_path / "report")]) == 0


# --- the recorded command, streaming local data ---


def test_the_recorded_command_reruns_the_same_evaluation(tiny_novad_dir, tmp_path):
    data = save_to_disk(tmp_path / "my data", n=3)  # a space in a path must survive quoting
    out = tmp_path / "first run"
    assert wer_run(tiny_novad_dir, data, out) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["command"][:3] == ["python", "-m", "eval.wer"]
    assert shlex.split(results["command_line"]) == results["command"]
    shutil.rmtree(out)
    command = [sys.executable, *shlex.split(results["command_line"])[1:]]
    env = {"NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    rerun = subprocess.run(
        command, cwd=results["cwd"], capture_output=True, text=True, env=os.environ | env
    )
    assert rerun.returncode == 0, rerun.stderr[-1000:]
    again = json.loads((out / "results.json").read_text())
    assert again["metrics"] == results["metrics"]


def local_layouts(tmp_path):
    """The same three utterances in every local layout the runner reads."""
    table = rows(3)
    saved = save_to_disk(tmp_path / "saved", n=3)
    datasets.Dataset.from_list(table).to_parquet(str(tmp_path / "d.parquet"))
    folder = tmp_path / "folder"
    folder.mkdir()
    lines, table_rows = [], [["file_name", "text"]]
    for i, row in enumerate(table):
        (folder / f"{i}.wav").write_bytes(row["audio"]["bytes"])
        lines.append(json.dumps({"audio": f"{i}.wav", "text": row["text"]}))
        table_rows.append([f"{i}.wav", row["text"]])
    (folder / "data.jsonl").write_text("\n".join(lines) + "\n")
    jsonl_folder = tmp_path / "jsonl-folder"
    shutil.copytree(folder, jsonl_folder)
    (jsonl_folder / "metadata.jsonl").write_text(
        "\n".join(line.replace('"audio"', '"file_name"') for line in lines) + "\n"
    )
    with (folder / "metadata.csv").open("w", newline="") as f:
        csv.writer(f).writerows(table_rows)
    return {
        "save_to_disk": saved,
        "parquet": str(tmp_path / "d.parquet"),
        "jsonl": str(folder / "data.jsonl"),
        "audiofolder-csv": str(folder),
        "audiofolder-jsonl": str(jsonl_folder),
    }


def test_streaming_reads_every_local_layout_as_the_whole_file_does(tmp_path):
    for layout, data in local_layouts(tmp_path).items():
        found = [
            [
                (u.index, u.text, u.error, u.audio.shape)
                for u in load_data(data, split="train", streaming=s)
            ]
            for s in (False, True)
        ]
        assert found[0] == found[1] and len(found[0]) == 3, layout
        assert all(error is None for _, _, error, _ in found[0]), layout


def test_a_streamed_local_run_equals_the_whole_run(tiny_novad_dir, tmp_path):
    data = local_layouts(tmp_path)["audiofolder-jsonl"]
    found = []
    for extra in ([], ["--streaming"]):
        out = tmp_path / f"run{len(extra)}"
        assert wer_run(tiny_novad_dir, data, out, "--split", "train", *extra) == 0
        found.append([(r["status"], r["hypothesis"]) for r in records_of(out).values()])
    assert found[0] == found[1] and [status for status, _ in found[0]] == ["ok"] * 3
