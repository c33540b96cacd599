"""The lookahead grammar: homophones the synthesizers speak alike, decided by the next word."""

import random
import shutil
import subprocess

import pytest

from dsmlab.train.sentences import HOMOPHONES, LEXICON, lookahead_sentence


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
