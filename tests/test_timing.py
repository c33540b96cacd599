import pytest

from dsmlab.timing import decode_text, words_from_tokens


class Pieces:
    """A hand-made tokenizer: ids 4.. map to sentencepiece-style pieces."""

    pieces = {4: "\u2581hello", 5: "\u2581wor", 6: "ld", 7: "\u2581a", 8: "\u2581b"}

    def id_to_piece(self, i):
        return self.pieces[i]

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids).replace("\u2581", " ").strip()


def words(tokens, prefix_s=0.0, delay_s=0.0, audio_end=None):
    found = words_from_tokens(
        tokens, Pieces(), prefix_s=prefix_s, delay_s=delay_s, audio_end=audio_end
    )
    return [(w.word, round(w.start, 3), round(w.end, 3), round(w.emitted, 3)) for w in found]


def test_one_word_per_segment_starts_after_its_boundary_and_ends_at_the_next():
    #         0  1  2  3  4  5  6  7  8  9  10
    tokens = [3, 3, 0, 4, 3, 3, 0, 5, 6, 3, 3]
    assert words(tokens) == [
        ("hello", 3 / 12.5, 6 / 12.5, 4 / 12.5),
        ("world", 7 / 12.5, 11 / 12.5, 9 / 12.5),  # no closing boundary: ends with the stream
    ]


def test_several_words_inside_one_segment_each_start_at_their_own_token():
    tokens = [0, 7, 8, 3, 3, 0, 4]
    assert words(tokens) == [
        ("a", 1 / 12.5, 2 / 12.5, 2 / 12.5),
        ("b", 2 / 12.5, 5 / 12.5, 3 / 12.5),
        ("hello", 6 / 12.5, 7 / 12.5, 7 / 12.5),
    ]


def test_last_word_without_closing_boundary_lasts_at_most_one_second():
    tokens = [0, 4] + [3] * 30
    assert words(tokens) == [("hello", 0.08, 0.08 + 1.0, 0.16)]


def test_late_tokens_of_an_unclosed_segment_are_kept():
    # "wor" then, 20 frames later (past the 1 s cap), "ld" and a new word "a"
    tokens = [0, 5] + [3] * 20 + [6, 3, 7, 3]
    assert words(tokens) == [
        ("world", 1 / 12.5, 24 / 12.5, 23 / 12.5),
        ("a", 24 / 12.5, 26 / 12.5, 25 / 12.5),
    ]


def test_times_subtract_prefix_and_delay_and_clip_to_the_audio():
    tokens = [3] * 5 + [0, 4, 3, 3, 0, 5, 6] + [3] * 20
    # offset 0.4 s; hello starts at frame 6 (0.48 s -> 0.08), world at frame 10 (0.8 -> 0.4)
    result = words(tokens, prefix_s=0.16, delay_s=0.24, audio_end=1.0)
    assert result == [("hello", 0.08, 0.32, 0.4), ("world", 0.4, 1.0, 0.8)]
    early = words([4, 0, 5, 6], prefix_s=0.16, delay_s=0.24)
    assert early[0][1:3] == (0.0, 0.0)  # before the offset: clipped at 0


def test_text_before_the_first_boundary_is_kept():
    assert [w[0] for w in words([4, 3, 0, 5, 6])] == ["hello", "world"]
    assert words([4, 3, 0, 5, 6])[0][1:3] == (0.0, 2 / 12.5)


def test_a_word_split_by_a_boundary_stays_one_word():
    result = words([0, 5, 0, 6, 3, 3])
    assert [w[0] for w in result] == ["world"]
    assert result[0][3] == pytest.approx(4 / 12.5)  # emitted with its last piece


def test_no_text_gives_no_words_and_text_decodes_everything_above_padding():
    assert words([3, 0, 3, 0, 3]) == []
    assert decode_text([3, 0, 4, 3, 5, 6, 0], Pieces()) == "hello world"


def test_a_word_confidence_is_the_product_of_its_tokens_probabilities():
    #         0    1    2    3    4    5    6
    tokens = [0, 5, 6, 3, 0, 4, 7]
    probs = [0.9, 0.5, 0.8, 0.99, 0.7, 0.6, 0.25]
    found = words_from_tokens(tokens, Pieces(), prefix_s=0.0, delay_s=0.0, token_probs=probs)
    assert [(w.word, w.confidence) for w in found] == [
        ("world", pytest.approx(0.5 * 0.8)),  # padding and boundaries do not count
        ("hello", pytest.approx(0.6)),
        ("a", pytest.approx(0.25)),
    ]
    assert all(
        w.confidence is None for w in words_from_tokens(tokens, Pieces(), prefix_s=0.0, delay_s=0.0)
    )
