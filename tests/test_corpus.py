"""The synthetic corpus: whole sentences with word times that match the audio, voices and
sentences kept apart by split, and the same corpus from the same seed."""

import ast
import io

import numpy as np
import pytest
import soundfile

from dsmlab.train import speech
from dsmlab.train.augment import SPEEDS
from dsmlab.train.corpus import (
    HELD_OUT_ACCENTS,
    HELD_OUT_VARIANTS,
    LOOKAHEAD_SHARE,
    TRAIN_ESPEAK_RATES,
    TRAIN_FLITE,
    generate,
    plan,
    voices_of,
)
from dsmlab.train.sentences import HESITATIONS, HOMOPHONES, vocabulary

SIZES = {"train": 8, "validation": 2, "test": 4, "unseen-flite": 2, "festival": 2, "lookahead": 3}
pytestmark = pytest.mark.skipif(
    not all(speech.available(s) for s in speech.SYNTHESIZERS),
    reason="needs espeak-ng, flite and festival (apt-get install espeak-ng flite festival)",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    import datasets

    out = generate(tmp_path_factory.mktemp("corpus") / "c", SIZES, seed=3, workers=2)
    return datasets.load_from_disk(str(out))


def audio(row):
    return soundfile.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")


def test_vocabulary_has_at_least_200_words():
    assert len(vocabulary()) >= 200


def test_word_times_match_the_audio(corpus):
    for split in corpus:
        for row in corpus[split]:
            x, rate = audio(row)
            words = row["words"]
            assert [w["word"] for w in words] == row["text"].rstrip(".").lower().split()
            assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:], strict=False))
            assert 0.05 <= words[0]["start"] and words[-1]["end"] <= len(x) / rate - 0.09
            level = np.abs(x).max()
            for w in words:  # every word sounds
                inside = np.abs(x[int(w["start"] * rate) : int(w["end"] * rate)])
                assert inside.max() > 0.1 * level, (split, row["id"], w)
            clean = ast.literal_eval(row["augmentation"])["noise_snr_db"] is None
            if clean:  # before the first word, only what a room adds
                before = x[: int((words[0]["start"] - 0.02) * rate)]
                assert np.abs(before).max(initial=0.0) < 0.1 * level, (split, row["id"])


def test_splits_keep_voices_and_sentences_apart(corpus):
    def voices(split):
        return [row["speaker_id"].split(":", 1) for row in corpus[split]]

    for synthesizer, name in voices("test"):
        accent, _, variant = name.partition("+")
        assert synthesizer == "espeak-ng"
        assert accent in HELD_OUT_ACCENTS and variant in HELD_OUT_VARIANTS
    for split in ("train", "validation"):
        for synthesizer, name in voices(split):
            if synthesizer == "flite":
                assert name in TRAIN_FLITE
            else:
                accent, _, variant = name.partition("+")
                assert synthesizer == "espeak-ng" and accent not in HELD_OUT_ACCENTS
                assert variant not in HELD_OUT_VARIANTS
    assert {tuple(v) for v in voices("unseen-flite")} == {("flite", "slt")}
    assert {s for s, _ in voices("festival")} == {"festival"}
    held_out = {t for split in ("test", "unseen-flite", "festival") for t in corpus[split]["text"]}
    assert not held_out & set(corpus["train"]["text"])


def test_the_same_seed_gives_the_same_corpus(corpus, tmp_path):
    import datasets

    again = datasets.load_from_disk(str(generate(tmp_path / "again", {"test": 4}, seed=3)))
    assert again["test"]["audio"] == corpus["test"]["audio"]
    assert again["test"]["words"] == corpus["test"]["words"]


def test_speed_moves_the_register_not_the_tempo():
    """Training voices are spoken slower by the factor the room then speeds them up: the tempo
    stays the one drawn for the voice (TRAIN_ESPEAK_RATES for espeak-ng), the register spans
    SPEEDS."""
    items = plan({"train": 400}, seed=1)["train"]
    sped = [p for p in items if p.augmentation.speed is not None]
    speeds = [p.augmentation.speed for p in sped]
    assert min(speeds) < 0.85 and max(speeds) > 1.2
    assert all(SPEEDS[0] <= s <= SPEEDS[1] for s in speeds)
    low, high = TRAIN_ESPEAK_RATES
    for p in sped:
        for voice in p.voices:
            if voice.synthesizer == "espeak-ng":
                assert low <= voice.rate * p.augmentation.speed <= high


def test_lookahead_sentences_mark_their_homophone_and_make_a_share_of_every_split():
    plans = plan({"train": 2000, "lookahead": 50, "test": 100}, seed=0)
    homophones = {w for pair in HOMOPHONES for w in pair}
    for split, items in plans.items():
        marked = [p for p in items if p.lookahead]
        for p in marked:
            (k,) = p.lookahead
            assert p.words[k] in homophones and p.words[k + 1] not in homophones
        share = len(marked) / max(1, len(items))
        if split == "lookahead":
            assert share == 1.0
        elif items:
            assert abs(share - LOOKAHEAD_SHARE) < 0.1, split
    both = {p.words[p.lookahead[0]] for p in plans["train"] if p.lookahead}
    assert both == homophones  # every member of every pair is trained


def test_the_train_splits_lookahead_share_is_a_setting_that_leaves_held_out_splits_alone():
    sizes = {"train": 600, "validation": 40, "test": 60, "festival": 20, "lookahead": 30}
    default, half = plan(sizes, seed=3), plan(sizes, seed=3, lookahead_share=0.5)
    for split in ("validation", "test", "festival", "lookahead"):
        assert [p.words for p in half[split]] == [p.words for p in default[split]], split
    shares = [sum(bool(p.lookahead) for p in ps["train"]) / 600 for ps in (default, half)]
    assert abs(shares[0] - LOOKAHEAD_SHARE) < 0.05 and abs(shares[1] - 0.5) < 0.05
    none = plan({"train": 100}, seed=3, lookahead_share=0.0)["train"]
    assert not any(p.lookahead for p in none)


def test_the_hesitation_probe_is_planned_apart_and_changes_no_other_split():
    sizes = {"train": 300, "validation": 20, "test": 40, "lookahead": 10}
    without = plan(sizes, seed=3)
    probe = {**sizes, "hesitation": 30}
    withit, half = plan(probe, seed=3), plan(probe, seed=3, lookahead_share=0.5)
    for split in sizes:
        assert withit[split] == without[split], split
    assert [p.words for p in half["hesitation"]] == [p.words for p in withit["hesitation"]]
    assert len(withit["hesitation"]) == 30
    for p in withit["hesitation"]:
        assert sum(w in HESITATIONS for w in p.words) == 1 and not p.lookahead
        assert all(v.synthesizer == "espeak-ng" for v in p.voices)  # the test split's voices
    voices = {v.name for p in withit["hesitation"] for v in p.voices}
    assert voices <= set(voices_of("test"))


def test_rendered_rows_carry_the_lookahead_column(corpus):
    for row in corpus["lookahead"]:
        (k,) = row["lookahead"]
        assert row["words"][k]["word"] in {w for pair in HOMOPHONES for w in pair}
        (spellings,) = row["homophones"]
        assert row["words"][k]["word"] in spellings and tuple(spellings) in HOMOPHONES
    assert all(isinstance(row["lookahead"], list) for row in corpus["test"])


def test_the_probe_text_is_the_corpus_lookahead_split_to_speak_elsewhere(corpus, tmp_path):
    import json

    from dsmlab.train.corpus import main

    sizes = [a for split, n in SIZES.items() for a in (f"--{split}", str(n))]
    assert main(["--probe-text", str(tmp_path / "p.jsonl"), *sizes, "--seed", "3"]) == 0
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [x["text"] for x in lines] == corpus["lookahead"]["text"]
    assert [x["lookahead"] for x in lines] == corpus["lookahead"]["lookahead"]
    assert [x["homophones"] for x in lines] == corpus["lookahead"]["homophones"]


def test_the_probe_spoken_by_another_synthesizer_is_a_dataset_eval_wer_scores(tmp_path):
    import json

    from dsmlab.train.corpus import main
    from eval import wer

    probe = tmp_path / "probe.jsonl"
    speak = ["--speak", "espeak-ng -v en-us -w {wav} {text}"]
    assert main(["--probe-text", str(probe), "--lookahead", "3", *speak]) == 0
    lines = [json.loads(x) for x in probe.read_text().splitlines()]
    assert [x["audio"] for x in lines] == [f"probe/{k:04d}.wav" for k in range(3)]
    out = tmp_path / "run"
    assert wer.main(["--model", "synth-d4", "--dataset", str(probe), "--out", str(out)]) == 0
    summary = json.loads((out / "results.json").read_text())["metrics"]
    assert summary["lookahead_utterances"] == 3 and summary["lookahead_words"] == 3


def test_speak_says_what_failed_in_one_line(tmp_path, capsys):
    from dsmlab.train.corpus import main

    probe = str(tmp_path / "probe.jsonl")
    assert main(["--probe-text", probe, "--lookahead", "1", "--speak", "no-such-tts {wav}"]) == 2
    assert "{text}" in capsys.readouterr().err
    speak = ["--speak", "no-such-tts {text} {wav}"]
    assert main(["--probe-text", probe, "--lookahead", "1", *speak]) == 2
    assert "could not run 'no-such-tts'" in capsys.readouterr().err


def test_a_hesitation_share_puts_fillers_in_the_train_split_and_keeps_off_the_probe():
    sizes = {"train": 400, "test": 30, "hesitation": 40}
    plain, half = plan(sizes, seed=5), plan(sizes, seed=5, hesitation_share=0.5)
    assert plain["train"] == plan({**sizes, "hesitation": 0}, seed=5)["train"]
    for split in ("hesitation", "test"):
        assert half[split] == plain[split], split
    hesitating = [p for p in half["train"] if any(w in HESITATIONS for w in p.words)]
    assert abs(len(hesitating) / 400 - 0.5) < 0.08
    assert not any(any(w in HESITATIONS for w in p.words) for p in plain["train"])
    probe = {p.words for p in half["hesitation"]}
    assert not probe & {p.words for p in half["train"]}
