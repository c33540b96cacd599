"""Long-form evaluation: stitched streams, their scoring, and eval.longform end to end."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from evaldata import save_to_disk, wav_bytes

import dsmlab
from eval import compare, longform, rundir, stream_scoring, streams

RATE = dsmlab.SAMPLE_RATE


def utterances(n=5):
    """Rows as dsmlab.data gives them: 24 kHz audio, reference words in utterance time."""
    found = []
    for i in range(n):
        seconds = 1.0 + 0.1 * i
        words = [
            {"word": f"w{i}x{k}", "start": 0.1 + 0.3 * k, "end": 0.3 + 0.3 * k} for k in range(3)
        ]
        found.append(
            SimpleNamespace(
                index=i,
                id=f"u{i}",
                text=" ".join(w["word"] for w in words),
                audio=np.full(round(seconds * RATE), i + 1, np.float32),
                words=words,
            )
        )
    return found


def test_stitching_is_seeded_shifts_word_times_and_cycles_through_every_row():
    rows = utterances()
    stream = streams.stitch(rows, 20.0, seed=3)
    assert stream == streams.stitch(rows, 20.0, seed=3)
    assert [s.index for s in stream.sentences] != [
        s.index for s in streams.stitch(rows, 20.0, seed=4).sentences
    ]
    assert stream.duration_s >= 20.0
    first_pass = [s.index for s in stream.sentences[:5]]
    assert sorted(first_pass) == [0, 1, 2, 3, 4]  # every row before any repeats
    previous_end = 0.0
    for s in stream.sentences:
        gap = s.offset_s - previous_end
        assert 0.3 - 1e-6 <= gap <= 1.2 + 1e-6
        original = rows[s.index].words
        assert [w["start"] for w in s.words] == pytest.approx(
            [w["start"] + s.offset_s for w in original]
        )
        previous_end = s.offset_s + s.duration_s


def test_the_stitched_audio_holds_each_utterance_at_its_offset_and_comes_in_whole_frames():
    rows = utterances()
    stream = streams.stitch(rows, 8.0, seed=0)
    pieces = list(streams.stitched_audio(stream, lambda i: rows[i].audio))
    audio = np.concatenate(pieces)
    assert len(audio) == round(stream.duration_s * RATE)
    for s in stream.sentences:
        start = round(s.offset_s * RATE)
        assert (audio[start : start + len(rows[s.index].audio)] == s.index + 1).all()
        assert audio[start - 1] == 0  # silence before it
    frames = list(streams.frames(iter(pieces)))
    assert all(len(f) == dsmlab.FRAME_SIZE for f in frames)
    assert np.array_equal(np.concatenate(frames)[: len(audio)], audio)


def word(text, start, end):
    return dsmlab.Word(text, start, end, emitted=end + 0.5)


def as_dicts(words):
    return [w.to_dict() for w in words]


def _stream_with(hyp_by_sentence, seconds_each=12.0):
    """A stitched stream of len(hyp_by_sentence) sentences, seconds_each apart, and the
    hypothesis words placed in each (a list of words per sentence, or None for nothing)."""
    sentences, words = [], []
    for k, hyp in enumerate(hyp_by_sentence):
        offset = k * seconds_each
        ref = [{"word": w, "start": offset + 0.5 * j, "end": offset + 0.5 * j + 0.4}
               for j, w in enumerate(("red", "green", "blue"))]  # fmt: skip
        sentences.append(streams.Sentence(k, f"s{k}", "red green blue", offset, 2.0, ref))
        for j, w in enumerate(hyp or []):
            words.append(word(w, offset + 0.5 * j + 0.02, offset + 0.5 * j + 0.3))
    return streams.Stream("s", len(hyp_by_sentence) * seconds_each, sentences), words


def test_words_go_to_their_sentence_and_each_sentence_is_scored():
    stream, words = _stream_with(
        [["red", "green", "blue"], ["red", "green"], ["red", "gren", "blue"]]
    )
    model = SimpleNamespace(name="m", delay_s=0.5, prefix_s=0.0)
    cut = stream_scoring.in_stream_transcripts(stream, words, model)
    assert [t.text for t in cut] == ["red green blue", "red green", "red gren blue"]
    normalize = dsmlab.get_normalizer("whisper", "en")
    records = stream_scoring.sentence_records(stream, cut, normalize, in_stream=True)
    assert [r["word_errors"] for r in records] == [0, 1, 1]
    assert [r["hits"] for r in records] == [3, 2, 2]
    assert records[2]["matches"][0]["ref_start"] == pytest.approx(24.0)  # stream times


def test_wer_by_window_and_by_third():
    stream, words = _stream_with([["red", "green", "blue"]] * 3 + [["red"]] * 3, seconds_each=10.0)
    model = SimpleNamespace(name="m", delay_s=0.5, prefix_s=0.0)
    normalize = dsmlab.get_normalizer("whisper", "en")
    records = stream_scoring.sentence_records(
        stream, stream_scoring.in_stream_transcripts(stream, words, model), normalize, True
    )
    windows = stream_scoring.by_window(records, stream.duration_s, records, window_s=30.0)
    assert [w["wer"] for w in windows] == [0.0, pytest.approx(2 / 3)]
    assert [w["alone_wer"] for w in windows] == [w["wer"] for w in windows]
    thirds = stream_scoring.by_third(records)
    assert [t["wer"] for t in thirds] == [0.0, pytest.approx(1 / 3), pytest.approx(2 / 3)]


@pytest.mark.parametrize(
    ("hyps", "collapse"),
    [
        ([["red", "green", "blue"]] * 6, None),  # no error at all
        ([["red", "green", "blue"]] * 3 + [None] * 3, 36.0),  # silent for the last 3 (36 s)
        ([["red", "green", "blue"]] * 3 + [["pink"]] * 3, 36.0),  # only wrong words: the same
        ([["red"]] * 5 + [None], None),  # the silent tail is shorter than a window
        ([None] * 2 + [["red"]] + [None] * 3, 36.0),  # a right word at sentence 3, then nothing
    ],
)
def test_the_collapse_is_where_correct_words_stop_for_good(hyps, collapse):
    assert _collapse(hyps) == collapse


def _collapse(hyps, seconds_each=12.0):
    """The collapse point of a stream of sentences with these hypotheses (30 s windows)."""
    stream, words = _stream_with(hyps, seconds_each)
    model = SimpleNamespace(name="m", delay_s=0.5, prefix_s=0.0)
    normalize = dsmlab.get_normalizer("whisper", "en")
    records = stream_scoring.sentence_records(
        stream, stream_scoring.in_stream_transcripts(stream, words, model), normalize, True
    )
    return stream_scoring.collapse_point(records, stream.duration_s, 30.0)


def test_a_word_right_by_chance_does_not_hide_a_collapse():
    hyps = [["red", "green", "blue"]] * 5 + [["pink", "red", "pink"]] + [["pink"]] * 9
    # from 30 s one reference word in 15 comes out right, then none: a collapse at 30 s
    assert _collapse(hyps, seconds_each=6.0) == 30.0


def test_a_collapse_that_begins_before_its_window_is_found_where_it_begins():
    # the first window (0-30 s) is 60% right, but its last two sentences already fail
    assert _collapse([["red", "green", "blue"]] * 3 + [None] * 12, seconds_each=6.0) == 18.0


def test_a_recording_is_aligned_whole_and_its_errors_placed_in_time():
    normalize = dsmlab.get_normalizer("whisper", "en")
    words = [word("red", 1.0, 1.2), word("blue", 40.0, 40.3)]
    units = stream_scoring.recording_units("red green blue", as_dicts(words), normalize)
    assert [(u["start_s"], u["word_errors"], u["hits"]) for u in units] == [
        (1.0, 0, 1),
        (1.0, 1, 0),  # "green" deleted: it takes its neighbour's time
        (40.0, 0, 1),
    ]
    words += [word("pink", 70.0, 70.2)]
    units = stream_scoring.recording_units("red blue", as_dicts(words), normalize)
    assert [(u["start_s"], u["reference_words"], u["word_errors"]) for u in units][-1] == (
        70.0,
        0,
        1,
    )  # an inserted word counts where it was written
    summary = stream_scoring.stream_summary(units, 90.0, window_s=30.0)
    assert summary["corpus_wer"] == pytest.approx(1 / 2)
    assert [w["wer"] for w in summary["windows"]] == [0.0, 0.0, None]
    nothing = stream_scoring.recording_units("red blue", [], normalize)  # the model wrote nothing
    assert stream_scoring.stream_summary(nothing, 90.0, window_s=30.0)["corpus_wer"] == 1.0


def test_eval_longform_stitches_runs_and_resumes(tiny_novad_dir, tmp_path, capsys):
    data = save_to_disk(tmp_path / "ds", n=4)
    out = tmp_path / "run"
    args = ["--model", str(tiny_novad_dir), "--dataset", data, "--minutes", "0.25"]
    args += ["--streams", "2", "--window", "5", "--out", str(out)]
    assert longform.main(args) == 0
    name = rundir.model_dirname(str(tiny_novad_dir))
    results = json.loads((out / name / "results.json").read_text())
    metrics = results["metrics"]
    assert metrics["streams"] == 2 and metrics["minutes"] >= 0.5
    assert metrics["utterances"] == sum(s["sentences"] for s in results["streams"])
    assert metrics["in_stream_minus_alone"]["utterances"] == metrics["utterances"]
    assert all(w["rss_mb"] and w["rtfx"] for w in metrics["resources"])
    assert (out / "wer_by_position.png").stat().st_size > 5000
    assert (out / "speed_memory.png").is_file()
    first = (out / name / "streams.jsonl").read_text()
    assert longform.main(args) == 0  # resumed: nothing is run again
    assert (out / name / "streams.jsonl").read_text() == first
    assert "collapse: " in capsys.readouterr().out
    stale = [json.loads(line) | {"hypothesis": "stale"} for line in first.splitlines()]
    (out / name / "streams.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale))
    assert longform.main([*args, "--overwrite"]) == 0  # a fresh run, not the old streams
    fresh = (out / name / "streams.jsonl").read_text().splitlines()
    assert [json.loads(r)["hypothesis"] for r in fresh] == [
        json.loads(r)["hypothesis"] for r in first.splitlines()
    ]
    assert longform.main([*args, "--normalizer", "none"]) == 2  # its records score otherwise
    documented = (Path(longform.__file__).parent / "METRICS.md").read_text()
    keys = {k.removesuffix("_ci95") for k in [*metrics, *results["streams"][0]]}
    assert not sorted(k for k in keys if f"`{k}`" not in documented)


def test_eval_compare_pairs_two_models_long_form_runs_by_their_sentences(tiny_novad_dir, tmp_path):
    data = save_to_disk(tmp_path / "ds", n=4)
    out = tmp_path / "run"
    args = ["--model", str(tiny_novad_dir), "--dataset", data, "--minutes", "0.25"]
    assert longform.main([*args, "--streams", "2", "--no-alone", "--out", str(out)]) == 0
    before = out / rundir.model_dirname(str(tiny_novad_dir))
    after = tmp_path / "other"  # the same streams, every word of the second stream wrong
    after.mkdir()
    (after / "results.json").write_text((before / "results.json").read_text())
    records = [json.loads(line) for line in (before / "streams.jsonl").read_text().splitlines()]
    for s in records[1]["sentences"]:
        s["word_errors"] = s["reference_words"]
    (after / "streams.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    found = compare.compare(before, after)
    metrics = json.loads((before / "results.json").read_text())["metrics"]
    assert found["utterances"] == metrics["utterances"] == sum(len(r["sentences"]) for r in records)
    assert found["corpus_wers"][0] == pytest.approx(metrics["corpus_wer"], abs=1e-6)
    second = sum(s["reference_words"] for s in records[1]["sentences"])
    errors = sum(s["word_errors"] for r in records[:1] for s in r["sentences"])
    words = second + sum(s["reference_words"] for s in records[0]["sentences"])
    assert found["corpus_wers"][1] == pytest.approx((errors + second) / words, abs=1e-6)
    (after / "streams.jsonl").write_text(json.dumps(records[1]) + "\n")  # one stream finished
    found = compare.compare(before, after)
    assert found["utterances"] == len(records[1]["sentences"]) and found["corpus_wers"][1] == 1.0


def test_eval_longform_reads_recordings_in_chunks(tiny_novad_dir, tmp_path, monkeypatch):
    import datasets

    rows = [{"audio": {"bytes": wav_bytes(40.0, seed=i), "path": None}, "text": "a b c"}
            for i in range(2)]  # fmt: skip
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "talks"))
    chunks = []
    real = dsmlab.read_chunks

    def spy(source, chunk_s, name=None):
        for chunk in real(source, chunk_s, name):
            chunks.append(len(chunk))
            yield chunk

    monkeypatch.setattr(dsmlab, "read_chunks", spy)
    out = tmp_path / "run"
    args = ["--model", str(tiny_novad_dir), "--dataset", str(tmp_path / "talks"), "--recordings"]
    assert longform.main([*args, "--out", str(out)]) == 0
    assert max(chunks) == streams.RECORDING_CHUNK_S * RATE and len(chunks) == 4
    results = json.loads(
        (out / rundir.model_dirname(str(tiny_novad_dir)) / "results.json").read_text()
    )
    assert [s["duration_s"] for s in results["streams"]] == [40.0, 40.0]
    # two recordings: their words pooled (it was null), with an interval over their windows
    each = results["streams"]
    errors = sum(w["word_errors"] for s in each for w in s["windows"])
    assert sum(s["reference_words"] for s in each) == 6
    assert results["metrics"]["corpus_wer"] == pytest.approx(errors / 6)
    low, high = results["metrics"]["corpus_wer_ci95"]
    assert low <= results["metrics"]["corpus_wer"] <= high


def test_streams_leave_out_the_rows_the_runner_skips(tiny_novad_dir, tmp_path):
    import datasets
    from evaldata import rows

    found = rows(4)
    found[1]["text"], found[2]["text"] = "ignore time segment in scoring", "Uh."
    data = tmp_path / "ds"
    datasets.Dataset.from_list(found).save_to_disk(str(data))
    out = tmp_path / "run"
    args = ["--model", str(tiny_novad_dir), "--dataset", str(data), "--minutes", "0.2"]
    assert longform.main([*args, "--no-alone", "--out", str(out)]) == 0
    record = json.loads(
        (out / rundir.model_dirname(str(tiny_novad_dir)) / "streams.jsonl").read_text()
    )
    assert {s["id"] for s in record["sentences"]} == {"utt0", "utt3"}


def test_longform_refuses_gaps_in_the_wrong_order(capsys):
    assert longform.main(["--gaps", "2", "1"]) == 2
    assert "--gaps: give the shortest silence first" in capsys.readouterr().err


def test_each_stream_says_where_it_collapsed_or_none():
    assert stream_scoring.collapses({"collapses_s": [None, 4.52]}) == "none, at 4.5 s"


def test_the_report_shows_long_streams_beside_other_runs(tiny_novad_dir, tmp_path):
    from eval import report

    data = save_to_disk(tmp_path / "ds", n=3)
    out = tmp_path / "lf"
    args = ["--model", str(tiny_novad_dir), "--dataset", data, "--minutes", "0.1"]
    assert longform.main([*args, "--window", "3", "--out", str(out)]) == 0
    assert report.main([str(out), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    row = md[md.index("## Long streams") :].split("\n| ")[3]
    assert row.startswith(tiny_novad_dir.name) and "wer_by_position.png" in md


def test_resource_windows_are_of_the_stream_not_of_the_silence_prefix(tiny_novad):
    import dataclasses

    with_prefix = dataclasses.replace(tiny_novad, prefix_s=1.0)  # as Kyutai's stt-2.6b-en
    audio = [np.zeros(24_000 * 5, np.float32), np.zeros(24_000 * 5, np.float32)]
    run = streams.run_stream(with_prefix, iter(audio), window_s=4.0)
    assert [w["start_s"] for w in run.windows] == [0.0, 4.0, 8.0]
    assert [w["audio_s"] for w in run.windows] == [4.0, 4.0, 2.0]  # 10 s fed, 1 s prefix not
    assert run.audio_s == 10.0
