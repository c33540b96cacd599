import io

import numpy as np
import pytest
import soundfile

from dsmlab.train.corpus import TEST_VOICE, TRAIN_VOICES, generate, vocabulary


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    import datasets

    out = generate(tmp_path_factory.mktemp("synth") / "c", {"train": 6, "test": 4}, seed=3)
    return datasets.load_from_disk(str(out))


def audio(row):
    return soundfile.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")


def test_vocabulary_has_at_least_200_words():
    assert len(vocabulary()) >= 200


def test_word_times_match_the_audio(corpus):
    for row in [*corpus["train"], *corpus["test"]]:
        x, rate = audio(row)
        words = row["words"]
        assert [w["word"] for w in words] == row["text"].rstrip(".").lower().split()
        assert all(a["end"] < b["start"] for a, b in zip(words, words[1:], strict=False))
        loud = 0.02 * np.abs(x).max()
        for w in words:  # inside a word: speech near both edges
            inside = np.abs(x[int(w["start"] * rate) : int(w["end"] * rate)])
            edge = max(1, int(0.03 * rate))
            assert inside[:edge].max() > loud * 0.5 and inside[-edge:].max() > loud * 0.5
        if row["snr_db"] is None:  # between words and before the first: silence
            gaps = [(0.0, words[0]["start"])] + [
                (a["end"], b["start"]) for a, b in zip(words, words[1:], strict=False)
            ]
            for start, end in gaps:
                margin = 0.005  # resampling smears edges by a few samples
                gap = x[int((start + margin) * rate) : int((end - margin) * rate)]
                assert np.abs(gap).max(initial=0.0) < 0.01 * np.abs(x).max()


def test_splits_keep_voices_and_sentences_apart(corpus):
    assert set(corpus["test"]["speaker_id"]) == {TEST_VOICE}
    assert set(corpus["train"]["speaker_id"]) <= set(TRAIN_VOICES)
    assert not set(corpus["test"]["text"]) & set(corpus["train"]["text"])


def test_generation_is_deterministic_and_test_split_does_not_depend_on_others(corpus, tmp_path):
    import datasets

    again = datasets.load_from_disk(str(generate(tmp_path / "again", {"test": 4}, seed=3)))
    assert again["test"]["audio"] == corpus["test"]["audio"]
    assert again["test"]["words"] == corpus["test"]["words"]
