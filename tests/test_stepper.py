import numpy as np
import pytest
import torch
from conftest import make_audio
from reference import kyutai_padding, plain_loop

from dsmlab import DSMLabError, flush_frames


def test_one_stream_matches_the_plain_loop(tiny):
    pcm = make_audio(3.0, seed=1)
    reference, reference_eot = plain_loop(tiny, kyutai_padding(pcm, tiny), vad=True)
    transcript = tiny.transcribe(pcm.numpy(), sample_rate=24000)
    assert len(set(reference)) > 5, "the test model must produce varied tokens"
    assert transcript.tokens == reference
    np.testing.assert_allclose(transcript.end_of_turn, reference_eot, atol=1e-5)


def test_batch_of_different_lengths_gives_each_stream_its_own_tokens(tiny):
    # 5 inputs in 3 slots: streams finish at different steps and new ones take their slots.
    pcms = [make_audio(s, seed=10 + i) for i, s in enumerate([2.0, 0.7, 3.1, 1.3, 2.2])]
    references = [plain_loop(tiny, kyutai_padding(p, tiny)) for p in pcms]
    transcripts = tiny.transcribe_batch(
        [p.numpy() for p in pcms], sample_rates=[24000] * 5, batch_size=3
    )
    for reference, transcript in zip(references, transcripts, strict=True):
        assert transcript.tokens == reference
    alone = [tiny.transcribe(p.numpy(), sample_rate=24000).tokens for p in pcms]
    assert alone == [t.tokens for t in transcripts]


def test_a_paused_slot_keeps_its_state(tiny):
    """Masking a slot out for some steps (exec mask) must not change what it produces."""
    a = kyutai_padding(make_audio(1.5, seed=3), tiny).view(-1, 1920)
    b = kyutai_padding(make_audio(4.0, seed=4), tiny).view(-1, 1920)
    reference = plain_loop(tiny, a.flatten())
    tokens_a, next_a = [], 0
    with tiny.streaming(2) as engine:
        for step in range(len(b)):
            run_a = next_a < len(a) and step % 3 != 1  # pause slot 0 every third step
            frames = torch.stack([a[next_a] if run_a else torch.zeros(1920), b[step]])
            outputs = engine.step(frames, torch.tensor([run_a, True]))
            if run_a:
                assert [o.slot for o in outputs] == [0, 1]
                assert outputs[0].frame == next_a
                assert outputs[0].time == pytest.approx((next_a + 1) / 12.5)
                tokens_a.append(outputs[0].token)
                next_a += 1
            else:
                assert [o.slot for o in outputs] == [1]
    assert next_a == len(a) and tokens_a == reference


def test_step_reports_vad_only_for_models_with_heads(tiny, tiny_novad):
    frames = torch.zeros(1, 1920)
    with tiny.streaming(1) as engine:
        (out,) = engine.step(frames)
        assert 0.0 <= out.end_of_turn <= 1.0
    with tiny_novad.streaming(1) as engine:
        (out,) = engine.step(frames)
        assert out.end_of_turn is None


def test_flush_equals_feeding_the_silence_in_real_time(tiny):
    speech = kyutai_padding(make_audio(1.2, seed=5), tiny, margin_s=0.0)
    speech = speech[: round((tiny.prefix_s + 1.2) * 24000) // 1920 * 1920].view(-1, 1920)
    n = flush_frames(tiny.delay_s)
    assert n == 4  # ceil(0.24 s / 80 ms) + 1
    silence = torch.zeros(1, 1920)
    with tiny.streaming(1) as engine:
        for frame in speech:
            engine.step(frame[None])
        realtime = [engine.step(silence)[0].token for _ in range(n)]
    with tiny.streaming(1) as engine:
        for frame in speech:
            engine.step(frame[None])
        flushed = engine.flush([0])
    assert flushed.frames == n
    assert flushed.tokens[0].tolist() == realtime
    assert len(flushed.step_wall_s) == n and flushed.wall_s > 0
    assert flushed.stream_time[0, -1] == pytest.approx((len(speech) + n) / 12.5)
    step = flushed.last_text_step()
    if step is None:
        assert flushed.last_text() is None
    else:
        assert flushed.last_text() == (flushed.stream_time[0, step], flushed.step_wall_s[step])


def test_flush_leaves_the_other_slots_untouched(tiny):
    a = kyutai_padding(make_audio(1.0, seed=6), tiny).view(-1, 1920)
    b = kyutai_padding(make_audio(2.0, seed=7), tiny).view(-1, 1920)
    reference_b = plain_loop(tiny, b.flatten())
    tokens_b = []
    with tiny.streaming(2) as engine:
        for step in range(len(b)):
            active = torch.tensor([step < len(a), True])
            frame_a = a[step] if step < len(a) else torch.zeros(1920)
            tokens_b.append(engine.step(torch.stack([frame_a, b[step]]), active)[-1].token)
            if step == 5:
                engine.flush([0])  # slot 0's end of speech, mid-way through slot 1's stream
    assert tokens_b == reference_b


def test_engine_rejects_bad_frames_and_use_outside_context(tiny):
    engine = tiny.streaming(2)
    with pytest.raises(DSMLabError, match="not running"):
        engine.step(torch.zeros(2, 1920))
    with engine:
        with pytest.raises(DSMLabError, match=r"expected frames of shape \[2, 1, 1920\]"):
            engine.step(torch.zeros(2, 1000))
    with pytest.raises(DSMLabError, match="batch size"):
        tiny.streaming(0)
    with pytest.raises(DSMLabError, match="temperature"):
        tiny.streaming(1, temperature=-1.0)


def test_sampling_with_a_temperature_departs_from_greedy(tiny):
    frames = kyutai_padding(make_audio(2.0, seed=12), tiny).view(-1, 1, 1920)
    greedy = plain_loop(tiny, frames.flatten())
    torch.manual_seed(0)
    with tiny.streaming(1, temperature=5.0) as engine:
        sampled = [engine.step(frame)[0].token for frame in frames]
    assert len(sampled) == len(greedy) and sampled != greedy


@pytest.mark.parametrize("encode_ahead", [1, 4])
def test_run_gives_the_plain_loop_tokens_whatever_the_frames_encoded_ahead(tiny, encode_ahead):
    # lengths that end inside a chunk of encode_ahead frames, in 2 slots that get refilled
    pcms = [make_audio(s, seed=20 + i) for i, s in enumerate([1.1, 2.3, 0.5, 1.7])]
    padded = [kyutai_padding(p, tiny) for p in pcms]
    with tiny.streaming(2) as engine:
        results = {r.key: r for r in engine.run(enumerate(padded), encode_ahead=encode_ahead)}
    for i, p in enumerate(padded):
        reference, reference_eot = plain_loop(tiny, p, vad=True)
        assert results[i].tokens.tolist() == reference
        np.testing.assert_allclose(results[i].end_of_turn, reference_eot, atol=1e-5)


def test_encode_ahead_makes_the_codes_of_mimi_encode(tiny):
    """One frame per call, with a slot masked out in between: Mimi's own codes."""
    audio = torch.stack([make_audio(0.8, seed=30), make_audio(0.8, seed=31)])[:, None]
    frames = [audio[..., k * 1920 : (k + 1) * 1920] for k in range(8)]
    with torch.no_grad(), tiny.mimi.streaming(2):
        per_frame = torch.cat([tiny.mimi.encode(f) for f in frames], dim=-1)
    with tiny.streaming(2) as engine:
        engine._set_active(torch.tensor([True, False]))
        ahead = torch.cat([engine._encode_ahead(f) for f in frames], dim=-1)
    assert torch.equal(ahead, per_frame)


def test_run_rejects_a_bad_encode_ahead(tiny):
    with tiny.streaming(1) as engine, pytest.raises(DSMLabError, match="encode_ahead"):
        list(engine.run([(0, torch.zeros(1920))], encode_ahead=0))
