"""eval.bench --end-to-end: Kyutai's evaluation script re-created and eval.wer, whole processes."""

import datasets
import pytest

import dsmlab
from eval import end_to_end


@pytest.mark.slow
def test_both_sides_transcribe_alike_and_padding_is_accounted(tmp_path):
    split = datasets.load_from_disk(str(dsmlab.test_split()))["test"].select(range(8))
    data = tmp_path / "eight"
    datasets.DatasetDict({"test": split}).save_to_disk(str(data))
    found = end_to_end.run("synth-d2", str(data), tmp_path / "out", runs=1, threads=1, batch_size=4)
    assert found["utterances"] == 8
    # static batches pad to the longest file; the same words come out of every row anyway
    assert found["same_transcripts"] == 8 and found["different"] == []
    assert found["kyutai_corpus_wer"] == pytest.approx(found["dsmlab_corpus_wer"])
    assert found["kyutai_mean_utterance_wer"] == pytest.approx(found["dsmlab_mean_utterance_wer"])
    counts = found["accounting"]
    assert 12.5 < counts["dsmlab_frames_per_audio_s"] <= counts["kyutai_frames_per_audio_s"]
    assert counts["dsmlab_mimi_calls_per_utterance"] <= counts["kyutai_mimi_calls_per_utterance"]
    for side in ("kyutai", "dsmlab"):
        walls = found["wall_s"][side]
        assert 0 < walls["min"] <= walls["median"] <= walls["max"]


def test_accounting_by_hand():
    model = dsmlab.load("synth-d2", device="cpu")  # prefix 0 s, delay 0.16 s
    found = end_to_end.accounting(model, [1.0, 3.0], batch_size=2)
    # each file padded with delay + 0.5 s: 1.66 s -> 21 frames, 3.66 s -> 46 frames;
    # one static batch of 32 steps both as long as the longest
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
