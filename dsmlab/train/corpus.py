"""A synthetic English speech corpus: whole sentences from several synthesizers, voices, rooms
and noises, with exact word times.

    python -m dsmlab.train.corpus --out runs/recipe/corpus
    python -m dsmlab.train.corpus --probe-text probe.jsonl --lookahead 200   # text only
    python -m dsmlab.train.corpus --probe-text probe.jsonl --speak 'espeak-ng -w {wav} {text}'

Each sentence is spoken in one go (`speech.speak`), so words run into each other as in speech,
and each word's start and end come from the synthesizer itself; then the utterance goes
through a random room, band limit, noise and speed (`augment`). The splits keep voices apart:

- train, validation: espeak-ng (six accents, most variants, rates and pitches) and flite
  (kal, kal16, awb, rms);
- test (bundled as the offline default): espeak-ng voices training never used: two held-out
  accents with held-out variants;
- unseen-flite: flite's slt, a voice of a synthesizer training used;
- festival: festival's voices, a synthesizer training never used;
- lookahead: the test split's voices, every sentence a lookahead sentence (`sentences`): a
  homophone that only the word after it decides, its index in the `lookahead` column and
  the spellings spoken like it in the `homophones` column;
- hesitation: the test split's voices, every sentence with a filler ("uh", "um") after a word it
  cannot end on: the probe of hesitation pauses for `eval.turns --split hesitation`;
- festival-train (empty unless asked for): festival's voices on sentences no other split holds,
  for fine-tuning studies (`dsmlab.train.finetune`), planned last.

Asking for either of the last two changes no other split: the hesitation probe is planned
first, from a random stream of its own.

Every other split holds LOOKAHEAD_SHARE of lookahead sentences (`--lookahead-share` sets the
train split's alone: models trained at two shares are scored on the same held-out sentences).
`--hesitation-share` puts that share of hesitation sentences in the train split (default 0:
none, and the train split is then the very one planned without the setting).

Held-out splits use sentences training never saw. Everything is a function of the seed:
espeak-ng's output depends slightly on what its process said before, so each chunk of
utterances is spoken by a fresh process. Chunks are kept as they finish: a killed run resumes.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import julius
import numpy as np
import soundfile
import torch
from tqdm import tqdm

from ..cli import ArgumentParser, non_negative_int, positive_int, probability, run_cli
from ..errors import DSMLabError, UsageError
from . import augment, speech
from .probe import speak_probe
from .sentences import hesitation_sentence, homophones_of, lookahead_sentence, sentence, text_of
from .workers import SPAWN, tied_to_this_process

STORE_RATE = 16_000
HELD_OUT_ACCENTS = ("en-us-nyc", "en-gb-x-gbcwmd")
HELD_OUT_VARIANTS = (
    "f4", "m6", "Andy", "Annie", "belinda", "benjamin", "edward", "klatt4",
    "linda", "max", "michel", "quincy", "steph2", "travis", "zac",
)  # fmt: skip
TRAINING_VOICES = ("train", "validation")  # the splits spoken by training's voices, augmented
TRAIN_FLITE = ("kal", "kal16", "awb", "rms")
TRAIN_ESPEAK_RATES = (0.8, 1.35)  # speaking rates of training's espeak-ng voices
FLITE_SHARE = 0.3  # of train and validation utterances
# planning order
SPLITS = ("hesitation", "test", "unseen-flite", "festival", "lookahead", "validation", "train")
SPLITS += ("festival-train",)
LOOKAHEAD_SHARE = 0.2  # of every split's sentences but the lookahead probe's (all of them)
# What each split's speech is, for reports and cards.
SPLIT_NOTES = {
    "test": "held-out espeak-ng voices: accents en-us-nyc and en-gb-x-gbcwmd, variants training "
    "never used",
    "unseen-flite": "flite's slt, a voice of a synthesizer training used",
    "festival": "festival's voices, a synthesizer training never used",
    "lookahead": "held-out espeak-ng voices as test; every sentence a homophone only the next "
    "word decides",
    "validation": "training's voices (espeak-ng and flite), sentences training never saw",
    "train": "training's voices (espeak-ng and flite), augmented",
    "festival-train": "festival's voices, sentences no other split holds: fine-tuning studies",
    "hesitation": "held-out espeak-ng voices as test; every sentence with a filler (uh, um) after "
    "a word it cannot end on",
}
# Utterances per split of the bundled models' corpus (the recipe's too).
SIZES = {
    "test": 100,
    "unseen-flite": 100,
    "festival": 100,
    "lookahead": 100,
    "validation": 200,
    "train": 10000,
    "festival-train": 0,
    "hesitation": 100,
}
CHUNK = 250  # utterances rendered by one process
VOICE_TRIES = 4  # voices a plan offers, in order


@dataclass(frozen=True)
class Plan:
    """One utterance to render: its words, voice and room."""

    id: str
    words: tuple[str, ...]
    lookahead: tuple[int, ...]  # indices of the words only the words after them decide
    voices: tuple[speech.Voice, ...]  # the first that speaks every word does (see `render`)
    augmentation: augment.Augmentation
    seed: int

    def transcript(self) -> dict:
        """Its text and lookahead marks, as its row and the probe text hold them."""
        marks = homophones_of(self.words, self.lookahead)
        return {"text": text_of(self.words), "lookahead": list(self.lookahead), "homophones": marks}


def voices_of(split: str) -> list[str]:
    """The voice names a split draws from (its synthesizer is implied by the split)."""
    if split == "unseen-flite":
        return ["slt"]
    if split in ("festival", "festival-train"):
        return speech.voices("festival")
    every = speech.voices("espeak-ng")
    held_out = [
        v
        for v in every
        if v.split("+")[0] in HELD_OUT_ACCENTS and v.partition("+")[2] in HELD_OUT_VARIANTS
    ]
    if split in ("test", "lookahead", "hesitation"):
        return held_out
    return [
        v
        for v in every
        if v.split("+")[0] not in HELD_OUT_ACCENTS and v.partition("+")[2] not in HELD_OUT_VARIANTS
    ]


def plan(
    sizes: dict[str, int],
    seed: int,
    lookahead_share: float = LOOKAHEAD_SHARE,
    hesitation_share: float = 0.0,
) -> dict[str, list[Plan]]:
    """Every split's utterances, drawn in a fixed order: a split's plan does not depend on the
    sizes of the splits after it in SPLITS; the held-out ones not on the train split's shares.
    The hesitation probe, first, draws on its own stream: it depends on no other split, and a
    train split with fillers keeps off its sentences."""
    drawn_in_order = random.Random(seed)
    seen: set[tuple[str, ...]] = set()
    plans: dict[str, list[Plan]] = {}
    for split in SPLITS:
        rng = random.Random(f"{seed}:{split}") if split == "hesitation" else drawn_in_order
        names = voices_of(split) if sizes.get(split) else []
        share = lookahead_share if split == "train" else LOOKAHEAD_SHARE
        plans[split] = []
        while len(plans[split]) < sizes.get(split, 0):
            hesitating = split == "train" and hesitation_share and rng.random() < hesitation_share
            if split == "hesitation" or hesitating:
                words, lookahead = tuple(hesitation_sentence(rng)[0]), ()
            elif split == "lookahead" or rng.random() < share:  # the probe draws no coin
                drawn, index = lookahead_sentence(rng)
                words, lookahead = tuple(drawn), (index,)
            else:
                words, lookahead = tuple(sentence(rng)), ()
            if words in seen:
                continue
            seen.add(words)
            voices = tuple(_voice(split, names, rng) for _ in range(VOICE_TRIES))
            settings = np.random.default_rng(rng.getrandbits(32))
            if split in TRAINING_VOICES:
                room = augment.draw(settings)
                voices = tuple(_register_only(v, room.speed) for v in voices)
            else:
                room = _mild(settings)
            plans[split].append(
                Plan(
                    f"{split}-{len(plans[split]):05d}",
                    words,
                    lookahead,
                    voices,
                    room,
                    rng.getrandbits(32),
                )
            )
    return plans


def _register_only(voice: speech.Voice, speed: float | None) -> speech.Voice:
    """The voice spoken `speed` times slower, so that the room's speed change moves its pitch
    and formants (its register) and leaves the tempo drawn for it."""
    return voice if speed is None else replace(voice, rate=voice.rate / speed)


def _voice(split: str, espeak_names: list[str], rng: random.Random) -> speech.Voice:
    if split in TRAINING_VOICES and rng.random() < FLITE_SHARE:
        name = rng.choice(TRAIN_FLITE)
        # up to 1.8: with the room's speed, male voices reach a female voice's pitch
        pitch = 1.0 if ("flite", name) in speech.FIXED_PITCH else rng.uniform(0.8, 1.8)
        return speech.Voice("flite", name, rng.uniform(0.85, 1.25), pitch)
    synthesizer = {"unseen-flite": "flite", "festival": "festival", "festival-train": "festival"}
    synthesizer = synthesizer.get(split, "espeak-ng")
    name = rng.choice(espeak_names)
    fixed = (synthesizer, name) in speech.FIXED_PITCH
    if split in TRAINING_VOICES:
        return speech.Voice(
            synthesizer, name, rng.uniform(*TRAIN_ESPEAK_RATES), rng.uniform(0.7, 1.4)
        )
    return speech.Voice(
        synthesizer, name, rng.uniform(0.9, 1.2), 1.0 if fixed else rng.uniform(0.85, 1.2)
    )


def _mild(rng: np.random.Generator) -> augment.Augmentation:
    """Held-out splits: the voice is what is new; a third get light noise, levels vary."""
    snr = float(rng.uniform(15, 35)) if rng.random() < 0.3 else None
    return augment.Augmentation(noise_snr_db=snr, level_db=float(rng.uniform(*augment.LEVELS_DB)))


def render(item: Plan) -> dict:
    """A dataset row: 16 kHz FLAC, the text, the timed words and how it was made. A voice that
    runs two words into one (espeak-ng's en-us-nyc says "hugo carried" as one word) gives way
    to the plan's next voice."""
    for voice in item.voices:
        try:
            spoken = speech.speak(list(item.words), voice)
            break
        except DSMLabError:
            if voice is item.voices[-1]:
                raise
    rng = np.random.default_rng(item.seed)
    timed = spoken.words + spoken.phones  # everything with a start and an end moves together
    audio, timed = _surround(spoken.audio, spoken.sample_rate, timed, rng)
    audio, timed = augment.apply(audio, spoken.sample_rate, timed, item.augmentation, rng)
    words, phones = timed[: len(spoken.words)], timed[len(spoken.words) :]
    stored = julius.resample_frac(torch.from_numpy(audio), spoken.sample_rate, STORE_RATE).numpy()
    flac = io.BytesIO()
    soundfile.write(flac, np.clip(stored, -1, 1), STORE_RATE, format="FLAC", subtype="PCM_16")
    return {
        "id": item.id,
        "audio": {"bytes": flac.getvalue(), "path": None},
        **item.transcript(),
        "words": [_rounded(w) for w in words],
        "phones": [_rounded(p) for p in phones],
        "speaker_id": f"{voice.synthesizer}:{voice.name}",
        "synthesizer": voice.synthesizer,
        "rate": round(voice.rate, 3),
        "pitch": round(voice.pitch, 3),
        "augmentation": str(item.augmentation.describe()),
    }


def _rounded(timed: dict) -> dict:
    return timed | {"start": round(timed["start"], 5), "end": round(timed["end"], 5)}


def _surround(
    audio: np.ndarray, rate: int, timed: list[dict], rng: np.random.Generator
) -> tuple[np.ndarray, list[dict]]:
    """Silence before (0.05 to 0.6 s) and after (0.1 to 0.4 s): speech rarely starts on the
    recording's first sample, and a word's place in time must not be learnt from it."""
    before, after = (int(rng.uniform(*span) * rate) for span in ((0.05, 0.6), (0.1, 0.4)))
    shift = before / rate
    moved = [w | {"start": w["start"] + shift, "end": w["end"] + shift} for w in timed]
    return np.pad(audio, (before, after)), moved


def _render_chunk(task: tuple[list[Plan], Path]) -> None:
    items, path = task
    rows = [render(item) for item in items]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(pickle.dumps(rows))
    tmp.replace(path)


def generate(
    out: Path,
    sizes: dict[str, int],
    seed: int = 0,
    workers: int = 2,
    lookahead_share: float = LOOKAHEAD_SHARE,
    hesitation_share: float = 0.0,
) -> Path:
    """Write a DatasetDict (save_to_disk) of the requested splits; see the module docstring."""
    import datasets

    plans = plan(sizes, seed, lookahead_share, hesitation_share)
    shared = "" if lookahead_share == LOOKAHEAD_SHARE else f"-lookahead{lookahead_share:g}"
    shared += f"-hesitation{hesitation_share:g}" if hesitation_share else ""
    parts = out.parent / f".{out.name}-parts-{seed}{shared}"
    parts.mkdir(parents=True, exist_ok=True)
    chunks = {
        parts / f"{split}-{first:06d}.pkl": items[first : first + CHUNK]
        for split, items in plans.items()
        for first in range(0, len(items), CHUNK)
    }
    tasks = [(items, path) for path, items in chunks.items() if not path.exists()]
    # one fresh process per chunk: a chunk's audio depends on nothing else
    with SPAWN.Pool(workers, maxtasksperchild=1, **tied_to_this_process()) as pool:
        for _ in tqdm(pool.imap_unordered(_render_chunk, tasks), total=len(tasks), desc="corpus"):
            pass
    rows = {row["id"]: row for path in chunks for row in pickle.loads(path.read_bytes())}
    splits = {
        split: datasets.Dataset.from_list([rows[item.id] for item in items], features=_features())
        for split, items in plans.items()
        if items
    }
    datasets.DatasetDict(splits).save_to_disk(str(out))
    return out


def _features():
    import datasets

    text, number = datasets.Value("string"), datasets.Value("float64")
    return datasets.Features(
        {
            "id": text,
            # a plain struct: datasets' Audio feature wants torchcodec even to store bytes
            "audio": {"bytes": datasets.Value("binary"), "path": text},
            "text": text,
            "words": datasets.List({"word": text, "start": number, "end": number}),
            "lookahead": datasets.List(datasets.Value("int32")),
            "homophones": datasets.List(datasets.List(text)),
            "phones": datasets.List({"phone": text, "start": number, "end": number}),
            "speaker_id": text,
            "synthesizer": text,
            "rate": number,
            "pitch": number,
            "augmentation": text,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dsmlab.train.corpus", description=__doc__)
    parser.add_argument("--out", type=Path, help="the corpus folder to write")
    for split in SPLITS:
        parser.add_argument(f"--{split}", type=non_negative_int, default=SIZES[split])
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--lookahead-share",
        type=probability,
        default=LOOKAHEAD_SHARE,
        help=f"of the train split's sentences (default {LOOKAHEAD_SHARE}; held-out splits keep it)",
    )
    parser.add_argument(
        "--hesitation-share",
        type=probability,
        default=0.0,
        help="of the train split's sentences: with a filler (uh, um) after a word it cannot end on",
    )
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument(
        "--probe-text",
        type=Path,
        help="instead, write the lookahead split's sentences (text, lookahead), the very ones the "
        "corpus of these sizes and seed holds, as JSON lines to speak with any synthesizer",
    )
    parser.add_argument(
        "--speak",
        metavar="COMMAND",
        help="with --probe-text, speak each sentence with this command ({text}: the sentence, "
        "{wav}: the file it must write), into a folder beside the file, which then names its "
        "audio: a dataset for eval.wer and eval.sweep",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        sizes = {s: getattr(args, s.replace("-", "_")) for s in SPLITS}
        if args.speak and not args.probe_text:
            raise UsageError("--speak speaks the probe: give --probe-text FILE too")
        if args.probe_text:
            lines = [p.transcript() for p in plan(sizes, args.seed)["lookahead"]]  # its own probe
            if args.speak:
                speak_probe(lines, args.probe_text, args.speak)
            args.probe_text.write_text("".join(json.dumps(line) + "\n" for line in lines))
            print(args.probe_text)
            return 0
        if args.out is None:
            raise UsageError("name the corpus folder with --out (or ask for --probe-text)")
        if not any(sizes.values()):
            raise UsageError("every split is empty: ask for some utterances")
        shares = (args.lookahead_share, args.hesitation_share)
        print(generate(args.out, sizes, args.seed, args.workers, *shares))
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
