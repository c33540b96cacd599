import json
import random

import pytest
import sentencepiece
import torch
from moshi.models.loaders import get_moshi_lm

import dsmlab
from dsmlab.checkpoint import lm_kwargs
from dsmlab.train import audio_tokenizer
from dsmlab.train.codes import Example, Speller, word_tokenizer
from dsmlab.train.corpus import generate
from dsmlab.train.lm import (
    AUDIO_CODE_NOISE,
    END_OF_PADDING_ID,
    PADDING_ID,
    SMALL_LM,
    TEXT_INPUT_NOISE,
    batch_codes,
    corrupt_inputs,
    model_config,
    text_divergence,
    text_stream,
    train,
)
from dsmlab.train.resumable import Checkpointed
from dsmlab.train.sentences import hesitation_sentence, vocabulary
from dsmlab.train.stream_examples import TAIL_FRAMES, stream_example
from dsmlab.train.vad_heads import add_vad_heads

P, E = PADDING_ID, END_OF_PADDING_ID


def test_text_stream_puts_tokens_where_the_delay_says():
    # words at 0.16 s (frame 2) and 0.56 s (frame 7), delay 3 frames -> frames 5 and 10
    stream = text_stream([[40], [41, 42]], [0.16, 0.56], n_frames=14, delay_frames=3)
    assert stream == [P, P, P, P, E, 40, P, P, P, E, 41, 42, P, P]


def test_text_stream_queues_a_word_that_starts_before_the_last_one_is_written():
    # second word due at frame 3, but frames 2..4 hold the first: it follows at once, no 0
    stream = text_stream([[40, 41, 42], [43]], [0.16, 0.24], n_frames=8, delay_frames=0)
    assert stream == [P, E, 40, 41, 42, 43, P, P]


def test_text_stream_rounds_to_the_nearest_frame_and_drops_what_falls_off():
    assert text_stream([[40]], [0.119], 4, 0) == [E, 40, P, P]  # 1.49 frames -> 1
    assert text_stream([[40]], [0.121], 4, 0) == [P, E, 40, P]  # 1.51 frames -> 2
    assert text_stream([[40, 41]], [0.0], 3, 2) == [P, E, 40]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_word_tokenizer_spells_every_word_of_the_grammar_at_any_seed(seed):
    """Seed 1 once lost a word to sentencepiece's character coverage and refused to train."""
    words = sentencepiece.SentencePieceProcessor(model_proto=word_tokenizer(seed))
    assert words.get_piece_size() == len(vocabulary()) + 4
    for word in vocabulary():
        assert words.encode(word) != [words.unk_id()] and len(words.encode(word)) == 1, word


def test_a_word_the_tokenizer_cannot_spell_never_becomes_its_unknown_id():
    """A filler in a training sentence (`--hesitation-share`) is outside the grammar's word
    tokenizer: spelled as is it would be the unknown id, token 0, the end-of-padding mark."""
    words = sentencepiece.SentencePieceProcessor(model_proto=word_tokenizer(0))
    sentence, filler = hesitation_sentence(random.Random(0))
    assert words.encode(sentence[filler]) == [words.unk_id()] == [E]
    spell = Speller(words)
    ids = [spell(w) for w in sentence]
    assert ids[filler] == [] and spell.unspellable == 1
    assert spell.summary("train") == (
        "train, words the tokenizer cannot spell: 1 get no tokens, "
        "0 are written in their normalized form"
    )
    assert Speller(words).summary("train") is None
    assert [i for k, i in enumerate(ids) if k != filler] == [
        words.encode(w) for k, w in enumerate(sentence) if k != filler
    ]
    assert spell(sentence[0].capitalize() + ".") == words.encode(sentence[0])
    assert spell.respelled == 1


def test_batch_codes_shift_audio_by_one_frame_and_pad_with_the_last_frame():
    codes = torch.arange(2 * 6).view(2, 6)
    short = Example(codes[:, :4], [[50]], [0.0], [0.2], "x")
    long = Example(codes, [[51]], [0.08], [0.3], "y")
    batch = batch_codes([short, long], delay_frames=1)
    assert batch.shape == (2, 3, 5)
    assert batch[1, 1:].tolist() == codes[:, 1:].tolist()  # audio frames 1..5
    assert batch[0, 1:].tolist() == [[1, 2, 3, 3, 3], [7, 8, 9, 9, 9]]
    assert batch[1, 0].tolist() == [P, E, 51, P, P]  # text: the stream's first T - 1 frames
    each = batch_codes([long, long], delay_frames=[0, 2])  # a conditioned model's batch
    assert each[:, 0].tolist() == [[E, 51, P, P, P], [P, P, E, 51, P]]


def test_input_corruption_changes_words_and_codes_only_at_their_rates():
    g = torch.Generator().manual_seed(0)
    text = torch.tensor([P, E, 40, P, E, 41] * 2000)
    codes = torch.cat([text[None], torch.randint(0, 64, (8, text.numel()), generator=g)])[None]
    noisy = corrupt_inputs(codes, vocab=50, card=64, generator=g)
    words = codes[0, 0] > P
    assert torch.equal(noisy[0, 0][~words], codes[0, 0][~words])  # 0 and 3 stay in place
    assert (noisy[0, 0][words] > P).all() and (noisy[0, 0] < 50).all()
    changed_words = (noisy[0, 0][words] != codes[0, 0][words]).float().mean()
    changed_codes = (noisy[0, 1:] != codes[0, 1:]).float().mean()
    # a replacement can draw the same value: 1/46 of words, 1/64 of codes
    assert changed_words == pytest.approx(TEXT_INPUT_NOISE * 45 / 46, abs=0.02)
    assert changed_codes == pytest.approx(AUDIO_CODE_NOISE * 63 / 64, abs=0.01)
    for rate in (0.0, 0.5):  # finetune --code-noise
        noisy = corrupt_inputs(codes, vocab=50, card=64, generator=g, audio_noise=rate)
        changed = (noisy[0, 1:] != codes[0, 1:]).float().mean()
        assert changed == pytest.approx(rate * 63 / 64, abs=0.01)


@pytest.mark.slow
def test_a_small_recipe_learns_resumes_exactly_and_gets_vad_heads(tmp_path, monkeypatch):
    sizes = {"train": 24, "validation": 4, "test": 4}
    corpus = generate(tmp_path / "c", sizes, seed=1)
    tokenizer = audio_tokenizer.build(corpus, tmp_path / "tok", steps=6, batch_size=4, crop=8)
    options = {"steps": 40, "batch_size": 8, "eval_every": 40, "save_every": 20}
    whole = train(corpus, tokenizer, tmp_path / "whole", delay_frames=2, **options)
    losses = [e["loss"] for e in json.loads((whole / "training_log.json").read_text())]
    assert sum(losses[-2:]) / 2 < 0.7 * losses[0]
    config = json.loads((whole / "config.json").read_text())
    assert config["stt_config"] == {
        "audio_delay_seconds": 0.16,
        "audio_silence_prefix_seconds": 0.0,
    }

    real_save = Checkpointed.save

    def killed_after_step_20(self, modules, step, log):
        real_save(self, modules, step, log)
        if step == 20:
            raise KeyboardInterrupt  # as a kill would, right after a save

    monkeypatch.setattr(Checkpointed, "save", killed_after_step_20)
    with pytest.raises(KeyboardInterrupt):
        train(corpus, tokenizer, tmp_path / "resumed", delay_frames=2, **options)
    monkeypatch.setattr(Checkpointed, "save", real_save)
    resumed = train(corpus, tokenizer, tmp_path / "resumed", delay_frames=2, **options)
    a = dsmlab.load(whole, device="cpu").lm.state_dict()
    b = dsmlab.load(resumed, device="cpu").lm.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the very same training

    report = add_vad_heads(whole, corpus, limit=24, tune_steps=3)
    assert report["train_steps"] > 0
    assert set(report["class_shares"]) == {"end_of_turn", "speaking", "unfinished", "finished"}
    assert sum(report["class_shares"].values()) == pytest.approx(1, abs=0.01)
    assert 0 < report["validation_conversations"]["speaking"]["steps"]
    assert dsmlab.load(whole, device="cpu").has_vad

    options |= {"steps": 4, "eval_every": 4}
    both = train(corpus, tokenizer, tmp_path / "both", delay_frames=[3, 1], **options)
    entry = json.loads((both / "training_log.json").read_text())[-1]
    assert set(entry["validation_wer_by_delay"]) == {"0.08", "0.24"}
    assert dsmlab.load(f"{both}@0.08", device="cpu").delays_s == [0.08, 0.24]
    other_delays = r"other settings \(delay_frames: \[1, 3\] there, \[1, 2\] here\)"
    with pytest.raises(dsmlab.DSMLabError, match=other_delays):  # only what differs
        train(corpus, tokenizer, tmp_path / "both", delay_frames=[1, 2], **options)


def test_text_divergence_is_the_mean_kl_from_the_base_per_position():
    generator = torch.Generator().manual_seed(0)
    base, tuned = (
        torch.randn(2, 3, 7, generator=generator),
        torch.randn(2, 3, 7, generator=generator),
    )
    assert float(text_divergence(base, base)) == pytest.approx(0, abs=1e-6)
    p, q = base.softmax(-1), tuned.softmax(-1)
    expected = (p * (p.log() - q.log())).sum(-1).mean()
    torch.testing.assert_close(text_divergence(tuned, base), expected)
    assert float(text_divergence(base, tuned)) != pytest.approx(float(expected), rel=1e-3)


def test_phone_labels_trail_the_audio_by_the_lag():
    phones = [{"phone": "a", "start": 0.0, "end": 0.04}, {"phone": "b", "start": 0.04, "end": 0.2}]
    classes = {"a": 1, "b": 2}
    now = audio_tokenizer.phone_labels(phones, frames=3, classes=classes)
    assert now.tolist() == [1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0]  # 20 ms each
    # one frame (4 labels) later: frame t names what frame t - 1 held, silence before the audio
    late = audio_tokenizer.phone_labels(phones, frames=3, classes=classes, lag=1)
    assert late.tolist() == [0, 0, 0, 0, *now[:8].tolist()]


def test_a_late_cut_learns_the_phones_of_its_own_frames_after_a_warm_up():
    phones = [{"phone": "a", "start": 0.0, "end": 0.4}, {"phone": "b", "start": 0.4, "end": 0.8}]
    classes = {"a": 1, "b": 2}
    whole = audio_tokenizer.phone_labels(phones, frames=10, classes=classes)
    assert audio_tokenizer._cut_labels(phones, 0, 6, classes, 0).equal(whole[:24])
    late = audio_tokenizer._cut_labels(phones, 3, 6, classes, 0)
    warm_up = audio_tokenizer.CROP_WARMUP * audio_tokenizer.SUB_FRAMES
    assert late[:warm_up].eq(audio_tokenizer.IGNORED).all()
    assert late[warm_up:].equal(whole[12 + warm_up : 36])


def test_a_wider_deeper_lm_is_built_at_the_size_asked():
    config = model_config(text_card=50, delays_frames=[16], dim=256, num_layers=6)
    assert config["stt_config"]["audio_delay_seconds"] == 1.28
    assert (config["dim"], config["num_layers"]) == (256, 6)
    assert SMALL_LM["dim"] == 128  # the default stays the bundled models' size
    model = get_moshi_lm(None, lm_kwargs=lm_kwargs(config), device="cpu", dtype=torch.float32)
    assert len(model.transformer.layers) == 6
    assert model.text_emb.weight.shape == (51, 256)  # moshi adds the initial token


def _utterance(k: int, frames: int, words: int) -> Example:
    """Codes that name their utterance (value k + 1) for `frames` frames, then a silent tail
    (value 0) as codes.Example holds; a word every 4 frames from frame 2."""
    codes = torch.full((2, frames + TAIL_FRAMES), k + 1)
    codes[:, frames:] = 0
    starts = [(2 + 4 * j) / 12.5 for j in range(words)]
    return Example(codes, [[10 + k]] * words, starts, [s + 0.2 for s in starts], f"u{k}")


def test_a_stream_example_joins_utterances_with_silences_and_shifts_their_words():
    examples = [_utterance(k, 30 + 5 * k, 3) for k in range(4)]
    made = [stream_example(examples, 200, torch.Generator().manual_seed(s)) for s in range(40)]
    again = stream_example(examples, 200, torch.Generator().manual_seed(7))
    assert torch.equal(made[7].codes, again.codes) and made[7].starts == again.starts
    for e in made:
        assert e.codes.shape == (2, 201)
        values = e.codes[0].tolist()
        assert 0 in values  # silence between the utterances
        for ids, start in zip(e.word_ids, e.starts, strict=True):
            frame = round(start * 12.5)  # words past the end are text_stream's to drop
            assert start >= 0 and (frame > 200 or values[frame] == ids[0] - 9)  # its utterance
    several = [e for e in made if len(set(e.codes[0].tolist()) - {0}) >= 2]
    assert len(several) > len(made) / 2  # most hold several utterances
    from_start = [e for e in made if e.codes[0, 0] == 0 or e.starts[:1] == [2 / 12.5]]
    assert 0 < len(from_start) < len(made)  # some begin where a stream begins, most mid-way


def test_replay_mixes_the_base_models_utterances_into_a_stream_at_its_share():
    tuned = [_utterance(k, 20, 2) for k in range(3)]  # code values 1 to 3
    base = [_utterance(k, 20, 2) for k in range(10, 13)]  # 11 to 13
    seeds = [torch.Generator().manual_seed(s) for s in range(60)]
    streams = [stream_example(tuned, 300, g, base, replay_share=0.5) for g in seeds]
    values = [v for e in streams for v in set(e.codes[0].tolist()) - {0}]
    replayed = sum(v > 10 for v in values) / len(values)
    assert 0.3 < replayed < 0.7
    only = stream_example(tuned, 300, torch.Generator().manual_seed(0), base, replay_share=0.0)
    assert set(only.codes[0].tolist()) <= {0, 1, 2, 3}


def test_stream_training_runs_and_resumes_with_its_settings(tmp_path):
    corpus = generate(tmp_path / "corpus", {"train": 6, "validation": 2}, seed=0)
    tokenizer = audio_tokenizer.build(corpus, tmp_path / "tok", steps=2, batch_size=2)
    out = tmp_path / "m"
    train(corpus, tokenizer, out, 2, steps=3, eval_every=3, save_every=1, stream_frames=40)
    log = json.loads((out / "training_log.json").read_text())
    assert log[-1]["step"] == 3 and "validation_wer" in log[-1]
    (out / "training.pt").rename(tmp_path / "saved.pt")  # a finished training's state, kept
    (tmp_path / "m2").mkdir()
    (tmp_path / "saved.pt").rename(tmp_path / "m2" / "training.pt")
    other_streams = "stream_frames: 40 there, 0 here.*resume with its settings"
    with pytest.raises(dsmlab.DSMLabError, match=other_streams):
        train(corpus, tokenizer, tmp_path / "m2", 2, steps=3, stream_frames=0)
