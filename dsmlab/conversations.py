"""Conversations whose turn ends and pauses are known exactly: what semantic-VAD heads are fit
on (`dsmlab.train.vad_heads`) and what end-of-turn detectors are scored on (`eval.turns`),
built the same way from utterances with word times.

Turns alternate between two speakers (voices, when the data names speakers); a turn is one or
more sentences (utterances) of its speaker. Three kinds of silence, each timed from the words:

- end of turn: after a turn's last word, until the other speaker starts;
- hesitation: a pause inside a sentence right after a filler ("I'd like a, uh ... pizza"),
  wherever the transcript has one (`normalizers.oalb.FILLERS`, the words WER scoring drops);
- unfinished: a pause inside a sentence, after a word a sentence cannot end on (a determiner, a
  conjunction, a preposition: "I'd like a ... pizza"; any inner word boundary where a sentence
  has none of those words);
- finished: a pause between two sentences of one turn: the sentence is done, the turn is not.

An acoustic VAD hears the same silence in all of them; only a model that follows the words can
tell an unfinished sentence (hesitating or not) from a finished one. After a finished sentence
only the length of the silence tells whether the turn goes on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .normalizers.oalb import FILLERS

END_OF_TURN, UNFINISHED, FINISHED = "end_of_turn", "unfinished", "finished"
HESITATION = "hesitation"  # an unfinished sentence, the pause after a filler
MID_TURN = (UNFINISHED, HESITATION, FINISHED)
# English words a sentence cannot end on: a pause after one is plainly mid-sentence.
UNFINISHED_AFTER = frozenset(
    "a an the every some my your his her our their its no and or but nor to of with from for "
    "at in on by into onto near behind under above beside across through beyond toward".split()
)
LEAD_S = 0.3  # silence before the first word
MARGIN_S = 0.05  # audio kept around each piece's words (the rest of the utterance is cut)


@dataclass(frozen=True)
class Boundary:
    time: float  # stream seconds where the speech stops
    kind: str  # END_OF_TURN, UNFINISHED or FINISHED
    pause_s: float  # how long the silence lasts until speech resumes (or the stream ends)


@dataclass
class Conversation:
    audio: np.ndarray  # float32 at `sample_rate`
    sample_rate: int
    boundaries: list[Boundary] = field(default_factory=list)
    words: list[dict] = field(default_factory=list)  # word, start, end in stream seconds
    source_ids: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


def plan_turns(
    utterances: Sequence, conversations: int, turns: int, max_sentences: int, rng: random.Random
) -> list[list[list]]:
    """For each conversation, `turns` turns of 1 to `max_sentences` utterances, alternating
    between two speakers (any utterances where the data names no speakers). Utterances are
    drawn without replacement until all have been used, then again."""
    by_speaker: dict[str | None, list] = {}
    for u in utterances:
        by_speaker.setdefault(getattr(u, "speaker", None), []).append(u)
    speakers = sorted(by_speaker, key=str)
    pools: dict[str | None, list] = {s: [] for s in speakers}

    def draw(speaker) -> object:
        if not pools[speaker]:
            pools[speaker] = rng.sample(by_speaker[speaker], len(by_speaker[speaker]))
        return pools[speaker].pop()

    def turn(speaker) -> list:
        count = min(rng.randint(1, max_sentences), len(by_speaker[speaker]))
        chosen: list = []
        while len(chosen) < count:  # distinct utterances within a turn
            u = draw(speaker)
            if all(u is not v for v in chosen):
                chosen.append(u)
        return chosen

    plans = []
    for _ in range(conversations):
        pair = rng.sample(speakers, 2) if len(speakers) > 1 else speakers * 2
        plans.append([turn(pair[t % 2]) for t in range(turns)])
    return plans


def build_conversation(
    turns: Sequence[Sequence],
    sample_rate: int,
    turn_gaps_s: Sequence[float],
    pauses_s: Sequence[float],
    rng: random.Random,
    unfinished_share: float = 0.5,
) -> Conversation:
    """One conversation from `turns` (each a list of utterances with .audio at `sample_rate`,
    .words, .id). Between turns, a silence drawn from `turn_gaps_s`; between a turn's sentences,
    one drawn from `pauses_s`; inside a sentence, with probability `unfinished_share`, one
    drawn from `pauses_s` after a filler, else after a word a sentence cannot end on."""
    pieces: list[np.ndarray] = [_silence(LEAD_S, sample_rate)]
    clock = LEAD_S
    words: list[dict] = []
    marks: list[tuple[float, str]] = []  # (where speech stops, kind): pauses from what follows
    starts: list[float] = []  # where speech (re)starts

    def speak(spoken: list[dict], silence_after: float, kind: str, lo: float, hi: float) -> None:
        """Append `spoken` with up to MARGIN_S of its audio around it (inside `lo`, `hi`: the
        audio is cut between two words, never inside one), then silence."""
        nonlocal clock
        first = max(spoken[0]["start"] - MARGIN_S, lo)
        last = min(spoken[-1]["end"] + MARGIN_S, hi)
        pieces.append(audio[round(first * sample_rate) : round(last * sample_rate)])
        shift = clock - first
        words.extend({**w, "start": w["start"] + shift, "end": w["end"] + shift} for w in spoken)
        starts.append(spoken[0]["start"] + shift)
        marks.append((spoken[-1]["end"] + shift, kind))
        clock += last - first
        gap = max(silence_after - (last - spoken[-1]["end"]) - MARGIN_S, 0.0)
        pieces.append(_silence(gap, sample_rate))
        clock += gap

    for t, turn in enumerate(turns):
        for s, utt in enumerate(turn):
            audio = np.asarray(utt.audio, dtype=np.float32)
            spoken = [w for w in utt.words if w["end"] > w["start"]] or list(utt.words)
            duration = len(audio) / sample_rate
            inner = _unfinished_cut(spoken, rng) if rng.random() < unfinished_share else None
            cut = 0.0  # where the audio is split inside the sentence
            if inner is not None:
                k, kind = inner
                cut = (spoken[k - 1]["end"] + spoken[k]["start"]) / 2
                speak(spoken[:k], rng.choice(list(pauses_s)), kind, 0.0, cut)
                spoken = spoken[k:]
            last_sentence = s == len(turn) - 1
            after = rng.choice(list(turn_gaps_s if last_sentence else pauses_s))
            if last_sentence and t == len(turns) - 1:
                after = max(turn_gaps_s)
            speak(spoken, after, END_OF_TURN if last_sentence else FINISHED, cut, duration)
    audio = np.concatenate(pieces)
    resumes = [*starts[1:], len(audio) / sample_rate]
    boundaries = [
        Boundary(round(t, 4), kind, round(r - t, 4))
        for (t, kind), r in zip(marks, resumes, strict=True)
    ]
    ids = [str(u.id) for turn in turns for u in turn]
    return Conversation(audio, sample_rate, boundaries, words, ids)


def _unfinished_cut(words: Sequence[dict], rng: random.Random) -> tuple[int, str] | None:
    """Index of the word after which to pause mid-sentence, and the pause's kind: after a
    filler (HESITATION) where there is one, else (UNFINISHED) after a word a sentence cannot
    end on, else after any inner word; None for one-word sentences."""
    inner = range(1, len(words))
    hesitating = [k for k in inner if _bare(words[k - 1]["word"]) in FILLERS]
    if hesitating:
        return rng.choice(hesitating), HESITATION
    plain = [k for k in inner if _bare(words[k - 1]["word"]) in UNFINISHED_AFTER]
    choices = plain or list(inner)
    return (rng.choice(choices), UNFINISHED) if choices else None


def _bare(word: str) -> str:
    return word.lower().strip(".,;:!?\"'")


def _silence(seconds: float, sample_rate: int) -> np.ndarray:
    return np.zeros(round(seconds * sample_rate), dtype=np.float32)
