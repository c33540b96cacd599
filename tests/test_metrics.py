import pytest

import dsmlab
from eval import metrics


def record(index, ref_norm, hyp_norm, ref_words=None, words=None, audio_s=2.0, merge=False):
    r = dsmlab.utterance_errors(ref_norm, hyp_norm, merge) | {
        "index": index,
        "status": "ok",
        "reference": ref_norm,
        "ref_norm": ref_norm,
        "hyp_norm": hyp_norm,
        "audio_s": audio_s,
        "ref_words": ref_words,
        "words": words or [],
    }
    normalize = dsmlab.get_normalizer("whisper", "en")
    r["matches"] = metrics.match_words(ref_words, r["words"], normalize) if ref_words else []
    r["finalization_s"] = metrics.finalization_s(r["words"], audio_s)
    r["wer"] = r["word_errors"] / r["reference_words"]
    return r


def test_wer_cer_and_counts_by_hand():
    records = [
        record(0, "the cat sat", "the cat sat down"),
        record(1, "hello world", "hello word"),
        {"index": 2, "status": "failed"},
        {"index": 3, "status": "skipped"},
    ]
    m = metrics.wer_metrics(records)
    assert (m["utterances"], m["failed"], m["skipped"]) == (2, 1, 1)
    assert m["corpus_wer"] == pytest.approx(2 / 5)  # 1 insertion + 1 substitution, 5 words
    assert m["mean_utterance_wer"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert (m["substitutions"], m["deletions"], m["insertions"], m["hits"]) == (1, 0, 1, 4)
    assert m["corpus_cer"] == pytest.approx(6 / 22)  # " down" inserted (5), one "l" deleted (1)
    assert m["mean_utterance_cer"] == pytest.approx((5 / 11 + 1 / 11) / 2)


def test_the_leaderboards_scoring_merges_split_compounds():
    """kaldialign with merge_compounds, as the leaderboard scores: 'white paper' against
    'whitepaper' is no error; plain Levenshtein counts a substitution and a deletion."""
    records = [record(0, "a white paper today", "a whitepaper today")]
    assert metrics.wer_metrics(records)["corpus_wer"] == pytest.approx(2 / 4)
    merged = metrics.wer_metrics(
        [record(0, "a white paper today", "a whitepaper today", merge=True)], merge_compounds=True
    )
    assert merged["corpus_wer"] == 0 and merged["reference_words"] == 4
    assert dsmlab.utterance_wer("a white paper today", "a whitepaper today", True) == 0


def test_whisper_normalizer_is_used_for_english():
    normalize = dsmlab.get_normalizer("whisper", "en")
    assert normalize("Hello, Mr. Smith!") == "hello mister smith"
    french = dsmlab.get_normalizer("whisper", "fr")
    assert french("Bonjour, ça va ?").split() == ["bonjour", "ça", "va"]


REF = [
    {"word": "Hello", "start": 0.0, "end": 0.5},
    {"word": "world", "start": 0.6, "end": 1.0},
    {"word": "again.", "start": 1.2, "end": 1.5},
]
HYP = [
    {"word": "hello", "start": 0.03, "end": 0.56, "emitted": 0.9},
    {"word": "word", "start": 0.6, "end": 1.0, "emitted": 1.3},
    {"word": "again", "start": 1.3, "end": 1.6, "emitted": 1.9},
]


def test_words_are_matched_through_the_alignment():
    matches = metrics.match_words(REF, HYP, dsmlab.get_normalizer("whisper", "en"))
    assert [m["word"] for m in matches] == ["hello", "again"]  # "word" is a substitution
    assert [m["latency"] for m in matches] == [pytest.approx(0.4), pytest.approx(0.4)]


def test_timestamp_errors_by_hand():
    m = metrics.timestamp_metrics(
        [record(0, "hello world again", "hello word again", REF, HYP)],
        dsmlab.get_normalizer("whisper", "en"),
    )
    assert m["matched_words"] == 2 and m["reference_words"] == 3
    assert m["start_abs_mean_s"] == pytest.approx((0.03 + 0.1) / 2)
    assert m["start_abs_median_s"] == pytest.approx(0.065)
    assert (m["start_within_40ms"], m["start_within_80ms"], m["start_within_200ms"]) == (
        0.5,
        0.5,
        1.0,
    )
    assert m["end_abs_mean_s"] == pytest.approx((0.06 + 0.1) / 2)
    assert (m["end_within_40ms"], m["end_within_80ms"], m["end_within_200ms"]) == (0.0, 0.5, 1.0)


def test_tcpwer_counts_a_word_out_of_its_time_as_two_errors():
    normalize = dsmlab.get_normalizer("whisper", "en")
    in_time = record(0, "hello world again", "hello word again", REF, HYP)
    late = [dict(w) for w in HYP]
    late[2] |= {"start": 4.3, "end": 4.6}  # "again", 3 s late
    too_late = record(1, "hello world again", "hello word again", REF, late)
    assert metrics.tcpwer([in_time], normalize, collar_s=0.2) == pytest.approx(1 / 3)
    assert metrics.tcpwer([too_late], normalize, collar_s=0.2) == pytest.approx(3 / 3)
    assert metrics.wer_metrics([too_late])["corpus_wer"] == pytest.approx(1 / 3)  # plain WER: blind


def test_latency_and_finalization():
    records = [
        record(0, "hello world again", "hello word again", REF, HYP, audio_s=1.6),
        record(
            1, "x", "x", None, [{"word": "x", "start": 0, "end": 1, "emitted": 0.5}], audio_s=1.0
        ),
    ]
    assert [r["finalization_s"] for r in records] == [pytest.approx(0.3), 0.0]
    m = metrics.latency_metrics(records)
    assert m["latency_words"] == 2 and m["word_latency_median_s"] == pytest.approx(0.4)
    assert m["finalization_no_flush_max_s"] == pytest.approx(0.3)
    assert metrics.finalization_s([], 1.0) is None


def test_step_capacity():
    m = metrics.step_metrics(step_s=0.01, batch_size=4)
    assert m["realtime_factor"] == pytest.approx(8.0)
    assert m["streams_realtime_estimate"] == 32


def test_paired_wer_differences_compare_runs_on_their_common_utterances():
    a = [record(i, "one two three four", "one two three four") for i in range(5)]
    b = [record(i, "one two three four", "one two three") for i in range(5)]
    b.append(record(9, "x", "y"))  # only in b: not compared
    (found,) = metrics.paired_wer_differences([("a", 0.2, a), ("b", 0.4, b)])
    assert (found["from"], found["to"], found["utterances"]) == ("a", "b", 5)
    assert found["corpus_wer_difference"] == pytest.approx(0.25)
    assert found["ci95"] == [0.25, 0.25] and found["real"]
    three = metrics.paired_wer_differences([("c", 0.6, a), ("a", 0.2, a), ("b", 0.4, b)])
    assert [(d["from"], d["to"]) for d in three] == [("a", "b"), ("b", "c"), ("a", "c")]
    assert three[2]["corpus_wer_difference"] == 0 and not three[2]["real"]


def test_delay_pairs_keep_a_conditioned_model_apart_and_meet_it_at_equal_delays():
    runs = [
        ("d4", 0.32, []),
        ("dc@0.32", 0.32, []),
        ("d2", 0.16, []),
        ("dc@0.16", 0.16, []),
        ("d8", 0.64, []),
    ]
    pairs = [(a[0], b[0]) for a, b in metrics.delay_pairs(runs)]
    assert pairs == [
        ("d2", "d4"),
        ("d4", "d8"),
        ("d2", "d8"),
        ("dc@0.16", "dc@0.32"),
        ("d2", "dc@0.16"),
        ("d4", "dc@0.32"),
    ]


def _lookahead_record(reference, hypothesis, lookahead, normalize):
    return {
        "status": "ok",
        "reference": reference,
        "hypothesis": hypothesis,
        "hyp_norm": normalize(hypothesis),
        "lookahead": lookahead,
    }


def test_lookahead_words_are_scored_apart_from_the_rest():
    normalize = dsmlab.get_normalizer("whisper", "en")
    records = [
        # "to" (2) written "two": wrong; "too" (5) right; nothing else wrong
        _lookahead_record("I want to go there too", "i want two go there too", [2, 5], normalize),
        # "their" (1) right; an inserted word and a deleted one count against the rest
        _lookahead_record("see their house now", "see their big house", [1], normalize),
        {"status": "ok", "reference": "no marks here", "hypothesis": "no", "lookahead": None},
    ]
    found = metrics.lookahead_metrics(records, normalize)
    assert found["lookahead_utterances"] == 2 and found["lookahead_words"] == 3
    assert found["lookahead_accuracy"] == pytest.approx(2 / 3)
    assert found["lookahead_wer"] == pytest.approx(1 / 3)
    assert found["other_wer"] == pytest.approx(2 / 7)  # insertion + deletion over 7 words
    assert metrics.lookahead_metrics(records[2:], normalize) == {}


def test_a_transcript_equal_to_its_reference_has_no_lookahead_errors():
    normalize = dsmlab.get_normalizer("whisper", "en")
    text = "I paid twenty five dollars at two"  # the normalizer writes the whole as "$25"
    found = metrics.lookahead_metrics([_lookahead_record(text, text, [6], normalize)], normalize)
    assert (found["lookahead_accuracy"], found["other_wer"]) == (1.0, 0.0)


def test_homophones_part_the_spelling_choice_from_hearing_the_word():
    normalize = dsmlab.get_normalizer("whisper", "en")
    records = [
        # heard, spelled as its homophone: wrong choice
        _lookahead_record("The knight bowed.", "the night bowed", [1], normalize),
        # heard and spelled right
        _lookahead_record("The sun rose.", "the sun rose", [1], normalize),
        # not heard at all: another word
        _lookahead_record("The tail began.", "the cat began", [1], normalize),
    ]
    alike = [["knight", "night"], ["son", "sun"], ["tail", "tale"]]
    for record, spellings in zip(records, alike, strict=True):
        record["homophones"] = [spellings]
    found = metrics.lookahead_metrics(records, normalize)
    assert found["lookahead_accuracy"] == pytest.approx(1 / 3)
    assert (found["lookahead_heard"], found["lookahead_choice_accuracy"]) == (2, 0.5)
    del records[0]["homophones"]  # a record without the column: no choice figure at all
    assert "lookahead_choice_accuracy" not in metrics.lookahead_metrics(records, normalize)


def test_a_bad_lookahead_cell_fails_its_row_with_the_reason(tmp_path):
    import datasets

    from dsmlab.data import load_data

    rows = [
        {"audio": {"bytes": b"x", "path": None}, "text": "a b c", "lookahead": [1, 5]},
        {"audio": {"bytes": b"x", "path": None}, "text": "a b c", "lookahead": [2]},
        {"audio": {"bytes": b"x", "path": None}, "text": "a b c", "lookahead": [2, 0],
         "homophones": [["c", "see"], ["a", "eh"]]},
        {"audio": {"bytes": b"x", "path": None}, "text": "a b c", "lookahead": [2, 0],
         "homophones": [["c", "see"]]},
    ]  # fmt: skip
    for row in rows[:2]:
        row["homophones"] = None
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    first, second, third, fourth = load_data(str(tmp_path / "ds"))
    assert "lookahead cell: expected indices of the reference's 3 words" in first.error
    assert second.lookahead == [2] and second.homophones is None
    assert (third.lookahead, third.homophones) == ([0, 2], [["a", "eh"], ["c", "see"]])
    assert "homophones cell: expected one list of spellings for each of the 2" in fourth.error
