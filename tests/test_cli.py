import json

import numpy as np
import sphn
from conftest import make_audio

import dsmlab
from dsmlab import transcribe
from dsmlab.__main__ import main


def write_wav(path, seconds, seed, rate=16000):
    sphn.write_wav(str(path), make_audio(seconds * rate / 24000, seed).numpy()[None], rate)
    return str(path)


def test_json_has_text_words_tokens_and_model_facts(tiny, tiny_dir, tmp_path, capsys):
    files = [write_wav(tmp_path / "a.wav", 1.0, 1), write_wav(tmp_path / "b.wav", 2.0, 2)]
    assert main(["transcribe", *files, "--model", str(tiny_dir), "--json", "--vad"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in records] == files
    for record, seconds in zip(records, [1.0, 2.0], strict=True):
        frames = int(np.ceil((0.16 + seconds + 0.24 + 0.5) * 12.5))
        assert len(record["tokens"]) == frames  # one token per frame fed, from the first
        assert record["model"] == tiny_dir.name
        assert (record["delay_s"], record["prefix_s"]) == (0.24, 0.16)
        assert all(
            set(w) == {"word", "start", "end", "emitted", "confidence"} for w in record["words"]
        )
        assert all(0 <= w["confidence"] <= 1 for w in record["words"])
        assert len(record["end_of_turn"]) == frames
        assert isinstance(record["end_of_turn_times"], list)
    expected = transcribe(tiny, files[1])
    assert records[1]["tokens"] == expected.tokens and records[1]["text"] == expected.text


def test_plain_output_with_timestamps(tiny_dir, tmp_path, capsys):
    path = write_wav(tmp_path / "a.wav", 2.0, 3)
    assert main(["transcribe", path, "--model", str(tiny_dir), "--timestamps", "--vad"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("  end of turn at:")
    for line in lines[1:-1]:
        start, end, word = line.split(maxsplit=2)
        assert 0.0 <= float(start) <= float(end) <= 2.0 and word


def test_errors_are_one_line_on_stderr(tiny_novad_dir, tmp_path, capsys):
    good = write_wav(tmp_path / "a.wav", 0.5, 4)
    cases = [
        (
            ["transcribe", str(tmp_path / "missing.wav"), "--model", "stt-2.6b-en"],
            "missing.wav: no such audio file",
        ),
        (["transcribe", good, "--model", "bogus"], "unknown model 'bogus'"),
        (
            ["transcribe", good, "--model", str(tiny_novad_dir), "--vad"],
            "has no semantic-VAD heads",
        ),
        (["random-checkpoint", "huge", str(tmp_path / "x")], "unknown architecture 'huge'"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_models_lists_the_released_short_names(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ["stt-1b-en_fr", "stt-2.6b-en", "stt-1b-en_fr-candle"]:
        assert name in out


def test_without_model_transcribe_runs_the_default_bundled_model(tmp_path, capsys, monkeypatch):
    path = write_wav(tmp_path / "a.wav", 1.0, 5)
    assert main(["transcribe", path, "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["model"] == dsmlab.default_model() is not None
    monkeypatch.setenv("DSMLAB_DATA", str(tmp_path))  # a data folder holding no models
    assert main(["transcribe", path]) == 2
    err = capsys.readouterr().err
    assert err == "error: no bundled model is installed: name one with --model\n"
