"""eval.bench --end-to-end: Kyutai's evaluation script re-created and eval.wer, whole processes."""

from pathlib import Path

import datasets
import pytest

import dsmlab
from eval import end_to_end, plots


def eight_utterances(tmp_path: Path) -> Path:
    split = datasets.load_from_disk(str(dsmlab.test_split()))["test"].select(range(8))
    data = tmp_path / "eight"
    datasets.DatasetDict({"test": split}).save_to_disk(str(data))
    return data


def test_end_to_end_on_a_tiny_model_rows_memory_and_plot(tiny_novad_dir, tmp_path):
    found = end_to_end.run(
        str(tiny_novad_dir),
        str(eight_utterances(tmp_path)),
        tmp_path / "out",
        runs=1,
        threads=1,
        batch_sizes=[1],
        long_file_minutes=0.2,
    )
    # a row per batch size asked for, and one at both tools' default (32)
    assert [r["batch_size"] for r in found["rows"]] == [1, 32]
    # one file per batch: both step the same frames. In a static batch of 8 the script steps
    # each file to the longest, and random weights say words in that extra silence
    assert found["rows"][0]["same_transcripts"] == 8
    for row in found["rows"]:
        assert row["utterances"] == 8
        for side in ("kyutai", "dsmlab"):
            assert 0 < row["wall_s"][side]["min"] <= row["wall_s"][side]["max"]
            assert 0.1 < row["peak_rss_gb"][side] < 20  # a whole Python process with torch
            assert row["rtfx"][side] == pytest.approx(
                found["audio_s"] / row["wall_s"][side]["median"]
            )
    assert found["at_defaults"]["speedup_median"] == pytest.approx(
        found["rows"][1]["speedup_median"]
    )
    long = found["long_file"]
    assert long["minutes"] == pytest.approx([0.02, 0.2])
    assert all(gb > 0.1 for gb in long["peak_rss_gb"])
    png = plots.rtfx_by_batch(found["rows"], tmp_path / "rtfx.png")
    assert png.stat().st_size > 5000


@pytest.mark.slow
def test_both_sides_transcribe_alike_and_padding_is_accounted(tmp_path):
    found = end_to_end.run(
        "synth-d2", str(eight_utterances(tmp_path)), tmp_path / "out", 1, 1, batch_sizes=[4]
    )
    row = found["rows"][0]
    # static batches pad to the longest file; the same words come out of every row anyway
    assert row["same_transcripts"] == 8 and row["different"] == []
    assert row["kyutai_corpus_wer"] == pytest.approx(row["dsmlab_corpus_wer"])
    assert row["kyutai_mean_utterance_wer"] == pytest.approx(row["dsmlab_mean_utterance_wer"])
    counts = row["accounting"]
    assert 12.5 < counts["dsmlab_frames_per_audio_s"] <= counts["kyutai_frames_per_audio_s"]
    assert counts["dsmlab_mimi_calls_per_utterance"] <= counts["kyutai_mimi_calls_per_utterance"]


def test_accounting_by_hand():
    model = dsmlab.load("synth-d2", device="cpu")  # prefix 0 s, delay 0.16 s
    found = end_to_end.accounting(model, [1.0, 3.0], batch_size=2)
    # each file padded with delay + 0.5 s: 1.66 s -> 21 frames, 3.66 s -> 46 frames;
    # one static batch of 2 steps both as long as the longest
    frames = [round(1.66 * 12.5 + 0.49), round(3.66 * 12.5 + 0.49)]
    assert found["dsmlab_lm_steps_per_utterance"] == sum(frames) / 2
    assert found["kyutai_lm_steps_per_utterance"] == max(frames)
    assert found["kyutai_frames_per_audio_s"] == pytest.approx(2 * max(frames) / 4.0)
    # batch 2, two streams: one step per frame of the longer, both slots computed
    assert found["dsmlab_slot_steps_over_needed"] == pytest.approx(2 * max(frames) / sum(frames))


def test_continuous_batching_steps_by_hand():
    # longest first, each stream into the first free slot: 5 | 3, then 3 -> 6, 2 -> 7
    assert end_to_end.continuous_steps([5, 3, 3, 2], batch_size=2) == 7
    assert end_to_end.continuous_steps([10, 1, 1, 1], batch_size=2) == 10
    assert end_to_end.continuous_steps([4], batch_size=8) == 4
