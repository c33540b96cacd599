import datasets
import numpy as np

import dsmlab
from dsmlab import Word, align_words, get_normalizer
from dsmlab.audio import SAMPLE_RATE, load_audio

NORMALIZE = get_normalizer("whisper", "en")


def timed(*spans):
    return [Word(w, start, end, emitted=end) for w, start, end in spans]


def test_matched_and_substituted_words_take_the_transcripts_times_missed_ones_the_gap():
    transcript = timed(("the", 0.1, 0.3), ("quack", 0.3, 0.6), ("fox", 1.0, 1.3))
    aligned = align_words("The quick brown fox.", transcript, NORMALIZE)
    assert [(a.word, a.start, a.end, a.matched) for a in aligned] == [
        ("The", 0.1, 0.3, True),
        ("quick", 0.3, 0.6, True),  # substituted: the model heard a word there
        ("brown", 0.6, 1.0, False),  # missed: the gap between its neighbours
        ("fox.", 1.0, 1.3, True),
    ]


def test_missed_words_share_a_gap_and_missed_ends_stay_inside_the_audio():
    transcript = timed(("b", 1.0, 1.2), ("e", 2.0, 2.2))
    aligned = align_words("a b c d e f g", transcript, NORMALIZE, audio_s=2.5)
    starts = {a.word: (a.start, a.end) for a in aligned if not a.matched}
    assert starts["a"] == (0.7, 1.0)  # before the first timed word: MISSED_WORD_S long
    assert starts["c"] == (1.2, 1.6) and starts["d"] == (1.6, 2.0)
    assert starts["f"][0] == 2.2 and starts["g"][1] == 2.5
    assert all(a.start <= a.end for a in aligned)


def test_a_word_that_normalizes_to_several_keeps_one_entry_with_their_span():
    transcript = timed(("twenty", 0.2, 0.5), ("five", 0.5, 0.8), ("dogs", 0.8, 1.1))
    aligned = align_words("25 dogs", transcript, NORMALIZE)
    assert [(a.word, a.start, a.end) for a in aligned] == [("25", 0.2, 0.8), ("dogs", 0.8, 1.1)]


def test_an_empty_transcript_spreads_the_words_over_the_audio():
    aligned = align_words("one two", [], NORMALIZE, audio_s=10.0)
    assert [a.matched for a in aligned] == [False, False]
    assert aligned[0].start == 0.0 and aligned[-1].end <= 10.0
    assert align_words("", timed(("x", 0, 1)), NORMALIZE) == []


def test_aligned_starts_are_near_the_true_ones_on_the_bundled_split():
    """The quality dsmlab/README.md quotes for the whole split, on 30 held-out utterances."""
    rows = datasets.load_from_disk(str(dsmlab.test_split()))["test"].select(range(30))
    model = dsmlab.load(dsmlab.default_model(), device="cpu")
    pcm = [load_audio(r["audio"]["bytes"]) for r in rows]
    transcripts = dsmlab.transcribe_batch(model, pcm, [SAMPLE_RATE] * len(pcm))
    errors, matched = [], []
    for row, transcript in zip(rows, transcripts, strict=True):
        aligned = align_words(row["text"], transcript.words, NORMALIZE, transcript.audio_s)
        assert len(aligned) == len(row["words"])
        errors += [abs(a.start - w["start"]) for a, w in zip(aligned, row["words"], strict=True)]
        matched += [a.matched for a in aligned]
    assert np.mean(matched) > 0.8
    assert np.median(errors) < 0.06
