"""The offline scheduler: continuous batching gives each stream the plain loop's tokens."""

import numpy as np
import pytest
import torch
from conftest import make_audio
from reference import kyutai_padding, plain_loop

from dsmlab import DSMLabError, Stepper, run_streams, transcribe, transcribe_batch
from dsmlab import scheduler as scheduler_module


def test_batch_of_different_lengths_gives_each_stream_its_own_tokens(tiny):
    # 5 inputs in 3 slots: streams finish at different steps and new ones take their slots.
    pcms = [make_audio(s, seed=10 + i) for i, s in enumerate([2.0, 0.7, 3.1, 1.3, 2.2])]
    references = [plain_loop(tiny, kyutai_padding(p, tiny)) for p in pcms]
    transcripts = transcribe_batch(
        tiny, [p.numpy() for p in pcms], sample_rates=[24000] * 5, batch_size=3
    )
    for reference, transcript in zip(references, transcripts, strict=True):
        assert transcript.tokens == reference
    alone = [transcribe(tiny, p.numpy(), sample_rate=24000).tokens for p in pcms]
    assert alone == [t.tokens for t in transcripts]


@pytest.mark.parametrize("encode_ahead", [1, 4])
def test_run_gives_the_plain_loop_tokens_whatever_the_frames_encoded_ahead(tiny, encode_ahead):
    # lengths that end inside a chunk of encode_ahead frames, in 2 slots that get refilled
    pcms = [make_audio(s, seed=20 + i) for i, s in enumerate([1.1, 2.3, 0.5, 1.7])]
    padded = [kyutai_padding(p, tiny) for p in pcms]
    with Stepper(tiny, 2) as stepper:
        results = {r.key: r for r in run_streams(stepper, enumerate(padded), encode_ahead)}
    for i, p in enumerate(padded):
        reference, reference_eot = plain_loop(tiny, p, vad=True)
        assert results[i].tokens.tolist() == reference
        np.testing.assert_allclose(results[i].end_of_turn, reference_eot, atol=1e-5)


def test_history_is_trimmed_to_the_oldest_running_stream(tiny, monkeypatch):
    """A long stream beside many short ones: history older than every running stream's first
    step is dropped, and every stream still gets its own tokens."""
    starts, lengths = [], []
    real_trim = scheduler_module._History.trim

    def spy(self, oldest_needed):
        real_trim(self, oldest_needed)
        starts.append(self.start)
        lengths.append(len(self.rows))

    monkeypatch.setattr(scheduler_module._History, "trim", spy)
    pcms = [make_audio(4.0, seed=40)] + [make_audio(0.3, seed=41 + i) for i in range(8)]
    padded = [kyutai_padding(p, tiny) for p in pcms]
    with Stepper(tiny, 2) as stepper:
        results = {r.key: r.tokens.tolist() for r in run_streams(stepper, enumerate(padded))}
    assert results == {i: plain_loop(tiny, p) for i, p in enumerate(padded)}
    long_frames = padded[0].numel() // 1920
    # the long stream started at step 0 and pins the history until it ends...
    assert starts[: long_frames - 1] == [0] * (long_frames - 1)
    assert max(lengths) <= long_frames  # ...which never holds more than the longest stream
    assert starts[-1] > 0  # then the rows before the short streams still running are dropped

    starts.clear()
    with Stepper(tiny, 2) as stepper:  # the long stream last: rows go as the short ones end
        list(run_streams(stepper, enumerate(padded[::-1])))
    assert 0 < max(starts[: long_frames - 1])


def test_history_column_after_a_trim():
    history = scheduler_module._History(start=2)  # the stepper had run 2 steps before
    for step in range(2, 8):
        history.append(torch.tensor([10 * step, 10 * step + 1]))
    assert history.column(0, first_step=3, frames=2).tolist() == [30, 40]
    history.trim(6)
    assert history.start == 6 and len(history.rows) == 2
    assert history.column(1, first_step=6, frames=2).tolist() == [61, 71]
    history.trim(3)  # never grows back
    assert history.start == 6


def test_step_and_the_scheduler_mix_on_one_stepper(tiny):
    """The scheduler leaves Mimi and the LM with different masks (encode ahead, partial last
    chunk); stepping by hand afterwards, then scheduling again, still gives the plain loop."""
    first = [kyutai_padding(make_audio(s, seed=50 + i), tiny) for i, s in enumerate([0.9, 1.5])]
    by_hand = kyutai_padding(make_audio(1.3, seed=52), tiny).view(-1, 1920)
    again = [kyutai_padding(make_audio(0.8, seed=53), tiny)]
    with Stepper(tiny, 2) as stepper:
        scheduled = {r.key: r.tokens.tolist() for r in run_streams(stepper, enumerate(first), 4)}
        stepper.reset(torch.tensor([True, True]))
        hand = [stepper.step(torch.stack([frame, frame]))[0].token for frame in by_hand]
        (last,) = run_streams(stepper, enumerate(again))
    with Stepper(tiny, 2) as fresh:  # the same batch shape: batch 2 and batch 1 can round apart
        expected = [fresh.step(torch.stack([frame, frame]))[0].token for frame in by_hand]
    assert scheduled == {i: plain_loop(tiny, p) for i, p in enumerate(first)}
    assert hand == expected
    assert last.tokens.tolist() == plain_loop(tiny, again[0])


def test_run_rejects_bad_streams_and_encode_ahead(tiny):
    with Stepper(tiny, 1) as stepper:
        with pytest.raises(DSMLabError, match="encode_ahead"):
            list(run_streams(stepper, [(0, torch.zeros(1920))], encode_ahead=0))
        with pytest.raises(DSMLabError, match="positive multiple of 1920"):
            list(run_streams(stepper, [("x", torch.zeros(1000))]))
