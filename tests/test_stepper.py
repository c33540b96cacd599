"""The stepper against Kyutai's plain loop (tests/reference.py): token for token."""

import numpy as np
import pytest
import torch
from conftest import make_audio
from reference import kyutai_padding, plain_loop

from dsmlab import DSMLabError, Stepper, flush_frames, transcribe


def test_one_stream_matches_the_plain_loop(tiny):
    pcm = make_audio(3.0, seed=1)
    reference, reference_eot = plain_loop(tiny, kyutai_padding(pcm, tiny), vad=True)
    transcript = transcribe(tiny, pcm.numpy(), sample_rate=24000)
    assert len(set(reference)) > 5, "the test model must produce varied tokens"
    assert transcript.tokens == reference
    np.testing.assert_allclose(transcript.end_of_turn, reference_eot, atol=1e-5)


def test_a_paused_slot_keeps_its_state(tiny):
    """Masking a slot out for some steps (exec mask) must not change what it produces."""
    a = kyutai_padding(make_audio(1.5, seed=3), tiny).view(-1, 1920)
    b = kyutai_padding(make_audio(4.0, seed=4), tiny).view(-1, 1920)
    reference_a, reference_b = plain_loop(tiny, a.flatten()), plain_loop(tiny, b.flatten())
    tokens_a, tokens_b, next_a = [], [], 0
    with Stepper(tiny, 2) as stepper:
        for step in range(len(b)):
            run_a = next_a < len(a) and step % 3 != 1  # pause slot 0 every third step
            frames = torch.stack([a[next_a] if run_a else torch.zeros(1920), b[step]])
            outputs = stepper.step(frames, torch.tensor([run_a, True]))
            if run_a:
                assert [o.slot for o in outputs] == [0, 1]
                assert outputs[0].frame == next_a
                assert outputs[0].time == pytest.approx((next_a + 1) / 12.5)
                tokens_a.append(outputs[0].token)
                next_a += 1
            else:
                assert [o.slot for o in outputs] == [1]
            tokens_b.append(outputs[-1].token)
    assert next_a == len(a) and tokens_a == reference_a and tokens_b == reference_b


def test_mimi_and_the_lm_keep_separate_masks(tiny):
    """Encoding a frame ahead for a slot the LM leaves out must not move that slot's LM."""
    a = kyutai_padding(make_audio(1.2, seed=13), tiny).view(-1, 1920)
    reference = plain_loop(tiny, a.flatten())
    tokens = []
    with Stepper(tiny, 2) as stepper:
        for k, frame in enumerate(a):
            frames = torch.stack([frame, torch.zeros(1920)])
            codes = stepper.encode(frames, torch.tensor([True, True]))
            if k % 2:  # the LM steps slot 1 alone first: slot 0's LM state must not move
                stepper.step_codes(codes, torch.tensor([False, True]))
            tokens.append(int(stepper.step_codes(codes, torch.tensor([True, False]))[0][0]))
    assert tokens == reference


def test_step_reports_vad_only_for_models_with_heads(tiny, tiny_novad):
    frames = torch.zeros(1, 1920)
    with Stepper(tiny, 1) as stepper:
        (out,) = stepper.step(frames)
        assert 0.0 <= out.end_of_turn <= 1.0
    with Stepper(tiny_novad, 1) as stepper:
        (out,) = stepper.step(frames)
        assert out.end_of_turn is None


def test_flush_equals_feeding_the_silence_in_real_time(tiny):
    speech = kyutai_padding(make_audio(1.2, seed=5), tiny, margin_s=0.0)
    speech = speech[: round((tiny.prefix_s + 1.2) * 24000) // 1920 * 1920].view(-1, 1920)
    n = flush_frames(tiny.delay_s, tiny.frame_rate)
    assert n == 4  # ceil(0.24 s / 80 ms) + 1
    silence = torch.zeros(1, 1920)
    with Stepper(tiny, 1) as stepper:
        for frame in speech:
            stepper.step(frame[None])
        realtime = [stepper.step(silence)[0].token for _ in range(n)]
    with Stepper(tiny, 1) as stepper:
        for frame in speech:
            stepper.step(frame[None])
        flushed = stepper.flush([0])
    assert flushed.frames == n
    assert flushed.tokens[0].tolist() == realtime
    assert len(flushed.step_wall_s) == n and flushed.wall_s > 0
    assert flushed.step_wall_s == sorted(flushed.step_wall_s)
    assert flushed.stream_time[0, -1] == pytest.approx((len(speech) + n) / 12.5)
    texts = [k for k, t in enumerate(realtime) if t > tiny.padding_id]
    assert flushed.last_text_step() == (texts[-1] if texts else None)
    if texts:
        assert flushed.last_text() == (
            flushed.stream_time[0, texts[-1]],
            flushed.step_wall_s[texts[-1]],
        )


def test_flush_leaves_the_other_slots_untouched(tiny):
    a = kyutai_padding(make_audio(1.0, seed=6), tiny).view(-1, 1920)
    b = kyutai_padding(make_audio(2.0, seed=7), tiny).view(-1, 1920)
    reference_b = plain_loop(tiny, b.flatten())
    tokens_b = []
    with Stepper(tiny, 2) as stepper:
        for step in range(len(b)):
            active = torch.tensor([step < len(a), True])
            frame_a = a[step] if step < len(a) else torch.zeros(1920)
            tokens_b.append(stepper.step(torch.stack([frame_a, b[step]]), active)[-1].token)
            if step == 5:
                stepper.flush([0])  # slot 0's end of speech, mid-way through slot 1's stream
    assert tokens_b == reference_b


def test_stepper_rejects_bad_frames_masks_and_use_outside_context(tiny):
    stepper = Stepper(tiny, 2)
    with pytest.raises(DSMLabError, match="not running"):
        stepper.step(torch.zeros(2, 1920))
    with stepper:
        with pytest.raises(DSMLabError, match=r"expected frames of shape \[2, 1, 1920\]"):
            stepper.step(torch.zeros(2, 1000))
        with pytest.raises(DSMLabError, match=r"active mask of shape \[2\]"):
            stepper.step(torch.zeros(2, 1920), torch.tensor([True]))
        with pytest.raises(DSMLabError, match=r"K \* 1920"):
            stepper.encode(torch.zeros(2, 1, 3000))
    with pytest.raises(DSMLabError, match="batch size"):
        Stepper(tiny, 0)
    for bad in (-1.0, float("nan")):
        with pytest.raises(DSMLabError, match="temperature"):
            Stepper(tiny, 1, temperature=bad)


def test_sampling_with_a_temperature_departs_from_greedy(tiny):
    frames = kyutai_padding(make_audio(2.0, seed=12), tiny).view(-1, 1, 1920)
    greedy = plain_loop(tiny, frames.flatten())
    torch.manual_seed(0)
    with Stepper(tiny, 1, temperature=5.0) as stepper:
        sampled = [stepper.step(frame)[0].token for frame in frames]
    assert len(sampled) == len(greedy) and sampled != greedy


@pytest.mark.parametrize("frames_per_call", [2, 3, 8])
def test_encoding_several_frames_gives_the_codes_of_mimi_encode_frame_by_frame(
    tiny, frames_per_call
):
    """K frames per call, with a slot masked out in between: Mimi's own codes, one frame per
    call (moshi's public path). 24 frames outlast the tiny Mimi's transformer context."""
    audio = torch.stack([make_audio(1.92, seed=30), make_audio(1.92, seed=31)])[:, None]
    with torch.no_grad(), tiny.mimi.streaming(2):
        per_frame = torch.cat(
            [tiny.mimi.encode(audio[..., k * 1920 : (k + 1) * 1920]) for k in range(24)], dim=-1
        )
    chunk = frames_per_call * 1920
    with Stepper(tiny, 2) as stepper:
        stepper.step_codes(per_frame[:, :, :1], torch.tensor([True, False]))  # LM mask differs
        ahead = torch.cat(
            [stepper.encode(audio[..., s : s + chunk]) for s in range(0, 24 * 1920, chunk)],
            dim=-1,
        )
    assert torch.equal(ahead, per_frame)
