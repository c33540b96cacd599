"""python -m eval.turns --model M --out DIR: how well end-of-turn is detected, three ways
(and a reference).

Conversations with known turn ends and mid-turn pauses are built from the dataset's word
times (`dsmlab.conversations`: turns of one to --sentences utterances alternating between two
speakers, pauses of --mid-pauses seconds inside unfinished sentences, after a filler where the
transcript has one, and between a turn's finished sentences), streamed through the model in
real-time order, and each detector's events are scored (`turn_streams`):

- semantic: each VAD head of the model, firing when its probability reaches a threshold
  (every threshold of --thresholds);
- unmute: the policy of Kyutai's Unmute: head 2's probability through an exponential moving
  average (half-life 10 ms, starting at 1.0, ignored for the first 12 steps and set to 0 when
  the turn's first word comes out), firing above a threshold (0.6 in Unmute) once per turn;
- unmute, new speech re-arms: the same policy, but only a word spoken after its last event
  (by the word's start time) re-arms it. Unmute's policy re-arms on any word that comes out,
  and at a long delay a turn's last words come out a delay after they were spoken, after the
  policy has already fired: each fires it again in the same silence;
- silero: the acoustic VAD silero-vad (its packaged weights), speech segments ending after a
  pause of P seconds (every P of --pauses), the event at segment end + P;
- words oracle: a reference, not a detector: it knows every sentence's last word exactly and
  never fires inside a sentence; it fires P seconds after every finished sentence still
  silent then (every P of --pauses). What following the words perfectly buys where, as here,
  what a sentence says does not tell whether its turn goes on: then only the silence does.

Per detector and threshold: precision, recall and F1 of end-of-turn events within
--tolerance, detection latency after the true end (median, p90), and false triggers in
mid-turn pauses (per pause of each kind: unfinished sentence, filler, finished sentence; and
per minute of audio); 95% bootstrap intervals over conversations for F1 and the latency
median; and per detector the lowest latency at which it reaches F1 0.8, 0.9 and 0.95 (detectors
compared at equal accuracy), and the same for the semantic F1, which sets aside the triggers
in pauses between a turn's finished sentences (where only the silence tells; `turn_streams`).
Writes turns.json, turns.csv, turns_pr.png and turns_latency.png (latency against F1, against
the semantic F1 and against false triggers).
"""

from __future__ import annotations

import random
import shlex
import sys

import julius
import numpy as np
import pandas as pd
import torch
from silero_vad import load_silero_vad

import dsmlab
from dsmlab import intervals
from dsmlab.conversations import (
    END_OF_TURN,
    FINISHED,
    MID_TURN,
    Conversation,
    build_conversation,
    plan_turns,
)

from . import options, plots, rundir
from .results import print_written, write_json
from .turn_streams import Score, best_per_detector, latency_at_f1, rates, score_events

SILERO_RATE = 16000
UNMUTE_HALF_LIFE_S, UNMUTE_WARM_UP_STEPS, UNMUTE_HEAD = 0.01, 12, 2
UNMUTE_BY_START = "unmute, new speech re-arms"


def main(argv: list[str] | None = None) -> int:
    parser = options.parser("turns", __doc__)
    parser.add_argument("--conversations", type=dsmlab.cli.positive_int, default=20)
    parser.add_argument("--turns", type=dsmlab.cli.positive_int, default=4, help="per conversation")
    parser.add_argument(
        "--sentences", type=dsmlab.cli.positive_int, default=2, help="at most, per turn"
    )
    parser.add_argument("--turn-gap", type=dsmlab.cli.positive_float, default=3.0, help="seconds")
    parser.add_argument(
        "--mid-pauses",
        type=dsmlab.cli.positive_float,
        nargs="+",
        default=[0.3, 0.6, 1.0, 1.5, 2.0],
        help="seconds",
    )
    parser.add_argument("--tolerance", type=dsmlab.cli.positive_float, default=2.5, help="seconds")
    parser.add_argument(
        "--thresholds",
        type=dsmlab.cli.probability,
        nargs="+",
        default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99],
        help="the grid goes past 0.9: at long delays the heads reach their best F1 there",
    )
    parser.add_argument(
        "--pauses",
        type=dsmlab.cli.positive_float,
        nargs="+",
        default=[0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0],
        help="silero pause rules (s)",
    )
    parser.add_argument("--seed", type=dsmlab.cli.non_negative_int, default=0)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> int:
        options.fill_defaults(args, "turns")
        if args.tolerance >= args.turn_gap:
            raise dsmlab.UsageError("--tolerance must be shorter than --turn-gap")
        with rundir.opened(args.out):
            model = dsmlab.load(args.model, device=args.device)
            if not model.has_vad:
                raise dsmlab.DSMLabError(f"{model.name} has no VAD heads: nothing to evaluate")
            conversations = build(args)
            sources = {"dataset": args.dataset, "split": args.split}
            sources["conversations"] = [c.source_ids for c in conversations]
            settings = ("sentences", "turn_gap", "mid_pauses", "tolerance", "thresholds")
            settings += ("pauses", "seed")
            identity = rundir.identity(model, sources, {k: getattr(args, k) for k in settings})
            rundir.claim(args.out, identity, args.overwrite)
            table = evaluate(model, conversations, args)
            write(args, model, conversations, table)
        return 0

    return dsmlab.run_cli(body, debug=args.debug)


def build(args) -> list[Conversation]:
    """--conversations conversations of --turns turns each, from the dataset's rows."""
    data = options.eval_data(args)
    usable = [u for u in data if u.audio is not None and u.words]
    if not usable:
        raise dsmlab.DSMLabError(
            f"{data.name}: no row with audio and word times; eval.turns needs word times"
        )
    rng = random.Random(args.seed)
    plans = plan_turns(usable, args.conversations, args.turns, args.sentences, rng)
    return [
        build_conversation(plan, dsmlab.SAMPLE_RATE, [args.turn_gap], args.mid_pauses, rng)
        for plan in plans
    ]


def evaluate(model: dsmlab.DSMModel, conversations: list[Conversation], args) -> list[dict]:
    """Every detector at every threshold: one row each."""
    streams = [stream_heads(model, c) for c in conversations]
    detectors: dict[tuple[str, float], list[list[float]]] = {}
    heads = streams[0][1].shape[1]
    for head in range(heads):
        for threshold in args.thresholds:
            detectors[(f"head {head}", threshold)] = [
                crossings(times, probs[:, head], threshold) for times, probs, _ in streams
            ]
    for name, by_start in (("unmute", False), (UNMUTE_BY_START, True)):
        for threshold in args.thresholds:
            detectors[(name, threshold)] = [
                unmute_events(times, probs[:, UNMUTE_HEAD], words, threshold, by_start)
                for times, probs, words in streams
            ]
    vad = load_silero_vad()
    speech = [silero_speech(vad, c) for c in conversations]
    for pause in args.pauses:
        detectors[("silero", pause)] = [silero_events(s, pause) for s in speech]
    for pause in args.pauses:
        detectors[("words oracle", pause)] = [oracle_events(c, pause) for c in conversations]
    minutes = sum(c.duration_s for c in conversations) / 60
    return [
        row(
            name,
            threshold,
            [
                score_events(e, c.boundaries, args.tolerance)
                for e, c in zip(events, conversations, strict=True)
            ],
            minutes,
        )
        for (name, threshold), events in detectors.items()
    ]


def row(detector: str, threshold: float, scores: list[Score], minutes: float) -> dict:
    total = sum(scores[1:], scores[0])
    found = {"detector": detector, "threshold": threshold, **rates(total)}
    found["mid_turn_triggers_per_min"] = sum(total.triggers.values()) / minutes
    picks = intervals.draws(len(scores))
    sampled = [rates(sum((scores[i] for i in pick[1:]), scores[pick[0]])) for pick in picks]
    for f1 in ("f1", "semantic_f1"):
        low, high = np.percentile([r[f1] for r in sampled], [2.5, 97.5])
        found[f"{f1}_ci95"] = [float(low), float(high)]
    if total.latencies:
        found["latency_median_s"] = float(np.median(total.latencies))
        found["latency_p90_s"] = float(np.percentile(total.latencies, 90))
        median = intervals.pooled([s.latencies for s in scores])
        found["latency_median_s_ci95"] = [median[1], median[2]]
    found["events"], found["ends_of_turn"] = total.events, total.ends
    return found


@torch.no_grad()
def stream_heads(model: dsmlab.DSMModel, conversation: Conversation):
    """Stream one conversation frame by frame: (the stream time after each frame, every head's
    probability per frame [frames, heads], each word's (time it came out, start time))."""
    prefix = np.zeros(round(model.prefix_s * model.sample_rate), np.float32)
    pcm = torch.from_numpy(np.concatenate([prefix, conversation.audio]))
    pcm = torch.nn.functional.pad(pcm, (0, -pcm.numel() % model.frame_size))
    tokens, probs = [], []
    with dsmlab.Stepper(model, 1) as stepper:
        for frame in pcm.view(-1, 1, model.frame_size):
            tokens.append(int(stepper.step_tensors(frame[None].to(model.device))[0][0]))
            probs.append(stepper.head_probs[0].float().cpu().numpy())
    times = (np.arange(len(tokens)) + 1) / model.frame_rate - model.prefix_s
    transcript = dsmlab.to_transcript(model, np.array(tokens), None, conversation.duration_s)
    return times, np.stack(probs), [(w.emitted, w.start) for w in transcript.words]


def crossings(times: np.ndarray, probs: np.ndarray, threshold: float) -> list[float]:
    """Stream times where the probability reaches `threshold` (after being below)."""
    return [float(times[f]) for f in dsmlab.end_of_turn_frames(probs, threshold)]


def unmute_events(times, probs, words, threshold: float, by_start: bool = False) -> list[float]:
    """Unmute's pause rule over one stream (see the module docstring); `words` are (time out,
    start) pairs. With `by_start`, a word re-arms the rule only if it started after the last
    event: new speech, not the late text of speech already called ended."""
    words = sorted(words)
    value, speaking, events, w = 1.0, False, [], 0
    last_event = -np.inf
    alpha = 1 - np.exp(-np.log(2) * (times[1] - times[0]) / UNMUTE_HALF_LIFE_S)
    for step, (t, p) in enumerate(zip(times, probs, strict=True)):
        if step >= UNMUTE_WARM_UP_STEPS:
            value = (1 - alpha) * value + alpha * float(p)
        while w < len(words) and words[w][0] <= t + 1e-9:
            new_speech = not by_start or words[w][1] > last_event
            if not speaking and new_speech:  # the turn's first word: the average resets
                speaking, value = True, 0.0
            w += 1
        if speaking and value > threshold:
            events.append(float(t))
            last_event, speaking = float(t), False
    return events


def silero_speech(vad, conversation: Conversation) -> torch.Tensor:
    """silero-vad's speech probability per 32 ms chunk of 16 kHz audio."""
    vad.reset_states()
    audio = torch.from_numpy(conversation.audio)[None]
    audio16 = julius.resample_frac(audio, conversation.sample_rate, SILERO_RATE)[0]
    chunk = 512
    audio16 = torch.nn.functional.pad(audio16, (0, -audio16.numel() % chunk))
    with torch.no_grad():
        return torch.stack([vad(c[None], SILERO_RATE)[0, 0] for c in audio16.view(-1, chunk)])


def silero_events(speech: torch.Tensor, pause_s: float, threshold: float = 0.5) -> list[float]:
    """Ends of speech followed by `pause_s` of non-speech: the event at end + pause."""
    chunk_s = 512 / SILERO_RATE
    events, speaking, silent = [], False, 0
    for k, p in enumerate(speech.tolist()):
        if p >= threshold:
            speaking, silent = True, 0
        elif speaking:
            silent += 1
            if silent * chunk_s >= pause_s:
                events.append((k + 1) * chunk_s)
                speaking = False
    return events


def oracle_events(conversation: Conversation, wait_s: float) -> list[float]:
    """The words oracle (module docstring): `wait_s` after each sentence's end, where the
    silence has lasted that long."""
    return [
        b.time + wait_s
        for b in conversation.boundaries
        if b.kind in (FINISHED, END_OF_TURN) and b.pause_s >= wait_s
    ]


def write(args, model, conversations, table: list[dict]) -> None:
    frame = pd.DataFrame(table)
    frame.drop(columns=[c for c in frame if c.endswith("_ci95")]).to_csv(
        args.out / "turns.csv", index=False
    )
    command = ["python", "-m", "eval.turns", *args.argv]
    write_json(
        args.out / "turns.json",
        {
            "command": command,
            "command_line": shlex.join(command),
            "model": model.name,
            "delay_s": model.delay_s,
            "conversations": len(conversations),
            "audio_s": round(sum(c.duration_s for c in conversations), 2),
            "ends_of_turn": sum(b.kind == END_OF_TURN for c in conversations for b in c.boundaries),
            **{
                f"{kind}_pauses": sum(b.kind == kind for c in conversations for b in c.boundaries)
                for kind in MID_TURN
            },
            "sentences_per_turn_max": args.sentences,
            "tolerance_s": args.tolerance,
            "turn_gap_s": args.turn_gap,
            "mid_pauses_s": args.mid_pauses,
            "latency_at_f1": latency_at_f1(table),
            "latency_at_semantic_f1": latency_at_f1(table, f1="semantic_f1"),
            "rows": table,
        },
    )
    plots.turn_curves(table, args.out / "turns_pr.png", args.out / "turns_latency.png")
    best = pd.DataFrame(best_per_detector(table))
    print(f"{model.name}: end of turn, best F1 per detector ({len(conversations)} conversations)")
    print(best.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for f1, what in (("f1", "F1"), ("semantic_f1", "semantic F1 (finished pauses set aside)")):
        print(f"lowest median latency (s) at equal {what}, per detector:")
        fastest = pd.DataFrame(latency_at_f1(table, f1=f1))
        print(fastest.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print_written(args.out)


if __name__ == "__main__":
    sys.exit(main())
