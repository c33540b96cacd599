"""The corpus grammar's probes: homophones the synthesizers speak alike, decided by the next
word; fillers where a sentence plainly goes on."""

import random
import shutil
import subprocess

import pytest

from dsmlab.conversations import UNFINISHED_AFTER
from dsmlab.normalizers import get_normalizer
from dsmlab.train.sentences import (
    HESITATIONS,
    HOMOPHONES,
    LEXICON,
    hesitation_sentence,
    lookahead_sentence,
)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
@pytest.mark.parametrize("pair", list(HOMOPHONES))
def test_espeak_ng_speaks_both_words_of_a_pair_alike(pair):
    phonemes = [
        subprocess.run(
            ["espeak-ng", "-q", "-x", f"the {word}"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for word in pair
    ]
    assert phonemes[0] == phonemes[1], (pair, phonemes)


def test_only_the_next_word_tells_the_pair_apart():
    cues = {}
    for pair, their_cues in HOMOPHONES.items():
        for word, words in zip(pair, their_cues, strict=True):
            for cue in words.split():
                assert cue not in cues, f"{cue} follows {cues.get(cue)} and {word}"
                cues[cue] = word
    rng = random.Random(1)
    for _ in range(200):
        words, k = lookahead_sentence(rng)
        assert cues[words[k + 1]] == words[k]  # the verb after it names the homophone
        assert words[k - 1] in LEXICON["det"] + LEXICON["adj"]  # what comes before does not


def test_a_hesitation_comes_where_the_sentence_plainly_goes_on_and_scoring_drops_it():
    rng = random.Random(2)
    for _ in range(200):
        words, k = hesitation_sentence(rng)
        assert words[k] in HESITATIONS and 0 < k < len(words) - 1
        assert words[k - 1] in UNFINISHED_AFTER  # "the uh ...", "beside um ...", "and uh ..."
        assert sum(w in HESITATIONS for w in words) == 1
    normalize = get_normalizer("oalb")
    assert normalize("The uh dog and um two cats.") == normalize("The dog and two cats.")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
@pytest.mark.parametrize("filler", HESITATIONS)
def test_espeak_ng_says_a_filler_as_a_sound_not_letters(filler):
    said = subprocess.run(
        ["espeak-ng", "-q", "-x", filler], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert said.startswith("'V"), said  # a schwa-like vowel, not "u h" spelled out
