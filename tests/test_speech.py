"""Whole sentences from espeak-ng, flite and festival: word times that fit the audio."""

from functools import cache

import numpy as np
import pytest

from dsmlab.errors import DSMLabError
from dsmlab.train import speech
from dsmlab.train.speech import SYNTHESIZERS, Voice, available, speak, voices

SENTENCE = "the quiet farmer painted her old yellow boat".split()
VOICE = {"espeak-ng": "en-us+m3", "flite": "slt", "festival": "kal_diphone"}
RATE = {"espeak-ng": 22050, "flite": 16000, "festival": 16000}


def each_synthesizer(test):
    marks = {
        s: pytest.mark.skipif(not available(s), reason=f"{s} is not installed")
        for s in SYNTHESIZERS
    }
    params = [pytest.param(s, marks=marks[s], id=s) for s in SYNTHESIZERS]
    return pytest.mark.parametrize("synthesizer", params)(test)


@cache
def spoken(voice: Voice) -> speech.Speech:
    return speak(SENTENCE, voice)


def frames(s: speech.Speech) -> tuple[np.ndarray, np.ndarray]:
    """RMS of 10 ms frames, over the loudest, and each frame's middle in seconds."""
    hop = s.sample_rate // 100
    n = len(s.audio) // hop
    rms = np.sqrt((s.audio[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
    return rms / rms.max(), (np.arange(n) + 0.5) * hop / s.sample_rate


@each_synthesizer
def test_one_timed_word_per_word_in_order_within_the_audio(synthesizer):
    s = spoken(Voice(synthesizer, VOICE[synthesizer]))
    assert s.sample_rate == RATE[synthesizer]
    assert s.audio.dtype == np.float32 and s.audio.ndim == 1 and np.abs(s.audio).max() <= 1
    assert [w["word"] for w in s.words] == SENTENCE
    duration = len(s.audio) / s.sample_rate
    assert 0 <= s.words[0]["start"] and s.words[-1]["end"] <= duration
    assert all(w["start"] < w["end"] for w in s.words)
    assert all(a["end"] <= b["start"] for a, b in zip(s.words, s.words[1:], strict=False))


@pytest.mark.parametrize(
    "synthesizer, name",
    [
        ("espeak-ng", "en-us+m3"),
        ("espeak-ng", "en-gb-x-rp+f2"),
        ("flite", "slt"),
        ("flite", "kal16"),
        ("festival", "kal_diphone"),
        ("festival", "ked_diphone"),  # says "farmer r painted", the r in no word
    ],
)
def test_speech_inside_each_word_from_its_start_and_quiet_outside(synthesizer, name):
    if not available(synthesizer) or name not in voices(synthesizer):
        pytest.skip(f"{synthesizer} voice {name} is not installed")
    s = spoken(Voice(synthesizer, name))
    rms, t = frames(s)
    outside = np.ones(len(rms), bool)
    for w in s.words:
        inside = (t >= w["start"]) & (t < w["end"])
        assert rms[inside].max() > 0.2, w
        assert rms[inside & (t < w["start"] + 0.15)].max() > 0.05, w  # near its start
        outside &= (t < w["start"] - 0.01) | (t > w["end"] + 0.01)
    assert rms[outside].max(initial=0) < 0.1  # before the first word, in pauses, after the last
    if synthesizer == "espeak-ng":  # no silence before the first word: it starts the audio
        assert s.words[0]["start"] < 0.01


@each_synthesizer
def test_a_faster_rate_gives_a_shorter_sentence(synthesizer):
    normal = spoken(Voice(synthesizer, VOICE[synthesizer]))
    fast = spoken(Voice(synthesizer, VOICE[synthesizer], rate=1.5))
    assert len(fast.audio) < 0.85 * len(normal.audio)
    assert fast.words[-1]["end"] - fast.words[0]["start"] < 0.8 * (
        normal.words[-1]["end"] - normal.words[0]["start"]
    )


@each_synthesizer
def test_two_voices_give_different_audio(synthesizer):
    others = [v for v in voices(synthesizer) if v != VOICE[synthesizer]]
    other = {"espeak-ng": "en-gb-x-rp+f2", "flite": "kal16"}.get(synthesizer, others[0])
    a = spoken(Voice(synthesizer, VOICE[synthesizer])).audio
    b = spoken(Voice(synthesizer, other)).audio
    assert len(a) != len(b) or not np.allclose(a, b, atol=1e-3)


def test_the_installed_voices():
    if available("espeak-ng"):
        found = voices("espeak-ng")
        assert {"en-us", "en-us+m3", "en-gb+f2", "en-gb-x-rp+m1"} <= set(found)
        assert not any(v.startswith("fr") for v in found)
    if available("flite"):
        assert "slt" in voices("flite") and "awb_time" not in voices("flite")
    if available("festival"):
        assert "kal_diphone" in voices("festival")


@pytest.mark.skipif(not available("espeak-ng"), reason="espeak-ng is not installed")
def test_espeak_ng_word_pairs_from_its_dictionary_stay_two_words():
    words = "we sat on the bench in the house".split()  # "on the", "in the": one entry each
    s = speak(words, Voice("espeak-ng", "en-gb"))  # "en-gb" has no voice file of that name
    assert [w["word"] for w in s.words] == words
    assert all(w["start"] < w["end"] for w in s.words)


@pytest.mark.parametrize(
    "voice",
    [
        Voice("espeak-ng", "en-us+nosuchvariant"),
        Voice("espeak-ng", "xx-nosuchlanguage"),
        Voice("flite", "nosuchvoice"),
        Voice("festival", "nosuchvoice"),
        Voice("flite", "rms", pitch=1.2),  # rms ignores pitch
        Voice("espeak-ng", "en-us", rate=5),
    ],
    ids=str,
)
def test_a_bad_voice_raises_one_line(voice):
    if not available(voice.synthesizer):
        pytest.skip(f"{voice.synthesizer} is not installed")
    with pytest.raises(DSMLabError) as error:
        speak(SENTENCE, voice)
    assert "\n" not in str(error.value) and str(error.value)


def test_a_missing_synthesizer_names_its_package(monkeypatch):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    for synthesizer in SYNTHESIZERS:
        assert not available(synthesizer)
        with pytest.raises(DSMLabError, match=f"apt-get install {synthesizer}"):
            speak(SENTENCE, Voice(synthesizer, VOICE[synthesizer]))
    with pytest.raises(DSMLabError, match="unknown synthesizer"):
        available("say")
