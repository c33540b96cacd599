"""A synthetic English speech corpus with exact word timings, spoken by espeak-ng.

Each word is rendered alone, trimmed of its silence, and placed with a known gap, so every
word's start and end are exact by construction. Sentences come from a small grammar (over
250 distinct words); voices, speaking rates and noise vary. The test split uses sentences
and a voice that training never saw. Everything is deterministic from the seed.

    python -m dsmlab.train.corpus --out data/synth --train 2400 --validation 100 --test 100
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch

from ..cli import ArgumentParser, run_cli
from ..errors import DSMLabError

STORE_RATE = 16_000
ESPEAK_RATE = 22_050
TRAIN_VOICES = [
    "en-us+m1",
    "en-us+f2",
    "en-gb-x-rp+m3",
    "en-gb+f3",
    "en-029+m2",
    "en-gb-scotland+f1",
]
TEST_VOICE = "en-us+f4"  # never used for train or validation
RATES = (135, 160, 185)  # words per minute
NOISE_SHARE = 0.3  # share of utterances with white noise, at 15 to 30 dB SNR

LEXICON = {
    "det": "the a every some this that my your his her our their one no".split(),
    "adj": (
        "small big old young red blue green yellow happy quiet loud bright dark warm cold "
        "soft heavy light quick slow tall short clever gentle brave tired hungry busy "
        "lazy strange simple wooden golden silver empty famous careful curious friendly "
        "angry calm"
    ).split(),
    "noun": (
        "dog cat bird horse farmer teacher doctor child river mountain garden window "
        "table chair kitchen forest village city road bridge boat train letter book song "
        "story picture flower tree apple bread coffee music paper door wall house market "
        "school engine radio camera lamp clock island ocean desert cloud storm morning "
        "evening winter summer captain pilot sailor baker singer painter neighbor "
        "student basket blanket candle pocket ladder mirror pencil jacket hammer "
        "bottle"
    ).split(),
    "verb_t": (
        "found saw carried painted opened closed watched followed pushed pulled "
        "cleaned moved fixed built sold bought lifted dropped wanted visited washed "
        "counted chased helped answered borrowed noticed remembered carried "
        "described ordered packed"
    ).split(),
    "verb_i": (
        "slept laughed waited danced smiled jumped arrived rested listened worked "
        "shouted whispered wandered"
    ).split(),
    "adv": (
        "quickly slowly quietly happily early late today again outside inside "
        "suddenly carefully rarely gladly softly twice"
    ).split(),
    "prep": "near behind under above beside across inside through beyond toward".split(),
    "name": (
        "anna peter maria james sofia david laura thomas emma oliver nina victor clara "
        "hugo george helen martin lucy"
    ).split(),
    "num": "two three four five six seven eight nine ten twelve twenty".split(),
    "plural": (
        "dogs cats birds apples books flowers boats letters songs chairs houses trees clocks lamps"
    ).split(),
}
TEMPLATES = [
    "det adj noun verb_t det noun",
    "name verb_t det adj noun prep det noun",
    "det noun verb_i adv",
    "name and name verb_t num plural",
    "prep det noun name verb_i adv",
    "det adj noun verb_i prep det adj noun",
    "name verb_t num adj plural adv",
    "det noun and det noun verb_i",
]


@dataclass
class Utterance:
    words: list[str]
    voice: str
    rate: int
    pitch: int
    snr_db: float | None


def vocabulary() -> list[str]:
    return sorted({w for words in LEXICON.values() for w in words} | {"and"})


def sentence(rng: random.Random) -> list[str]:
    template = rng.choice(TEMPLATES).split()
    return [rng.choice(LEXICON[slot]) if slot in LEXICON else slot for slot in template]


class Speaker:
    """espeak-ng, one word at a time, cached: (voice, rate, pitch, word) -> trimmed samples."""

    def __init__(self) -> None:
        if shutil.which("espeak-ng") is None:
            raise DSMLabError("espeak-ng is not installed: apt-get install espeak-ng")
        self._cache: dict[tuple, np.ndarray] = {}

    def prefetch(self, keys: set[tuple]) -> None:
        missing = [k for k in keys if k not in self._cache]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for key, audio in zip(missing, pool.map(self._render, missing), strict=True):
                self._cache[key] = audio

    def word(self, word: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        key = (word, voice, rate, pitch)
        if key not in self._cache:
            self._cache[key] = self._render(key)
        return self._cache[key]

    @staticmethod
    def _render(key: tuple) -> np.ndarray:
        word, voice, rate, pitch = key
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", word],
            capture_output=True,
            check=True,
        ).stdout
        audio, rate_out = soundfile.read(io.BytesIO(wav), dtype="float32")
        assert rate_out == ESPEAK_RATE, rate_out
        return trim(audio)


def trim(audio: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Cut leading and trailing silence: the word spans its first to last loud sample."""
    loud = np.nonzero(np.abs(audio) > threshold * np.abs(audio).max())[0]
    return audio[loud[0] : loud[-1] + 1]


def render(utt: Utterance, speaker: Speaker, rng: random.Random) -> tuple[np.ndarray, list]:
    """Words placed with random gaps -> (16 kHz audio, [{word, start, end}] in seconds)."""
    pieces = [np.zeros(int(rng.uniform(0.15, 0.4) * ESPEAK_RATE), dtype=np.float32)]
    cursor = len(pieces[0])
    timings = []
    for i, word in enumerate(utt.words):
        audio = speaker.word(word, utt.voice, utt.rate, utt.pitch)
        timings.append(
            {
                "word": word,
                "start": cursor / ESPEAK_RATE,
                "end": (cursor + len(audio)) / ESPEAK_RATE,
            }
        )
        gap = rng.uniform(0.1, 0.3) if i == len(utt.words) - 1 else rng.uniform(0.03, 0.2)
        silence = np.zeros(int(gap * ESPEAK_RATE), dtype=np.float32)
        pieces += [audio, silence]
        cursor += len(audio) + len(silence)
    signal = np.concatenate(pieces)
    signal = 0.5 * signal / np.abs(signal).max()
    if utt.snr_db is not None:
        noise = np.random.default_rng(rng.getrandbits(32)).standard_normal(len(signal))
        power = np.mean(signal**2) / 10 ** (utt.snr_db / 10)
        signal = signal + np.sqrt(power) * noise.astype(np.float32)
    import julius  # resample once, for the whole utterance: times in seconds do not move

    stored = julius.resample_frac(torch.from_numpy(signal), ESPEAK_RATE, STORE_RATE).numpy()
    return stored, [{k: round(v, 5) if k != "word" else v for k, v in t.items()} for t in timings]


def plan(n: int, voices: list[str], rng: random.Random, exclude: set[str]) -> list[Utterance]:
    """n utterances with new sentences (not in `exclude`, which grows), voices and rates."""
    out = []
    while len(out) < n:
        words = sentence(rng)
        key = " ".join(words)
        if key in exclude:
            continue
        exclude.add(key)
        snr = rng.uniform(15, 30) if rng.random() < NOISE_SHARE else None
        out.append(
            Utterance(words, rng.choice(voices), rng.choice(RATES), rng.choice((35, 50, 65)), snr)
        )
    return out


def generate(out: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """Write a DatasetDict (save_to_disk) with the requested splits, deterministically."""
    import datasets

    rng = random.Random(seed)
    seen: set[str] = set()
    # Plans are drawn in a fixed order (test first, so it is the same whatever else is asked).
    plans = {
        "test": plan(sizes.get("test", 0), [TEST_VOICE], rng, seen),
        "validation": plan(sizes.get("validation", 0), TRAIN_VOICES, rng, seen),
        "train": plan(sizes.get("train", 0), TRAIN_VOICES, rng, seen),
    }
    speaker = Speaker()
    splits = {}
    for name, utterances in plans.items():
        if not sizes.get(name):
            continue
        speaker.prefetch({(w, u.voice, u.rate, u.pitch) for u in utterances for w in u.words})
        split_rng = random.Random(f"{seed}-{name}")
        rows = []
        for i, utt in enumerate(utterances):
            audio, words = render(utt, speaker, split_rng)
            flac = io.BytesIO()
            soundfile.write(flac, audio, STORE_RATE, format="FLAC", subtype="PCM_16")
            rows.append(
                {
                    "id": f"{name}-{i:05d}",
                    "audio": {"bytes": flac.getvalue(), "path": None},
                    "text": " ".join(utt.words).capitalize() + ".",
                    "words": words,
                    "speaker_id": utt.voice,
                    "rate_wpm": utt.rate,
                    "snr_db": utt.snr_db,
                }
            )
        features = datasets.Features(
            {
                "id": datasets.Value("string"),
                # a plain struct: datasets' Audio feature wants torchcodec even to store bytes
                "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                "text": datasets.Value("string"),
                "words": datasets.List(
                    {
                        "word": datasets.Value("string"),
                        "start": datasets.Value("float64"),
                        "end": datasets.Value("float64"),
                    }
                ),
                "speaker_id": datasets.Value("string"),
                "rate_wpm": datasets.Value("int32"),
                "snr_db": datasets.Value("float64"),
            }
        )
        splits[name] = datasets.Dataset.from_list(rows, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m dsmlab.train.corpus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=2400)
    parser.add_argument("--validation", type=int, default=100)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = {"train": args.train, "validation": args.validation, "test": args.test}
    return run_cli(lambda: print(generate(args.out, sizes, args.seed)) or 0, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
