"""python -m eval.longform --model M --dataset D --minutes 10 --out DIR: does the model keep
listening on a long stream?

Each stream is transcribed in one pass, as a live stream would be: no segmentation, no reset,
the flush trick at the very end only (`streams.run_stream`). Streams are stitched from the
dataset's utterances (`--minutes` long, `--streams` of them, seeded order and silences of
`--gaps` seconds; reference word times shifted into the stream), or, for a long-form set
(`rev16`, `earnings21-long`, `earnings22-long`, `tedlium-long`, `meanwhile`, or
`--recordings`), each row is one recording, read in chunks.

Per model (DIR/<model>/): streams.jsonl (one record per finished stream: resumable),
results.json with, per stream and over all of them, the WER of the whole stream with its 95%
interval, the WER per --window of the stream and per third of it, the collapse point (where
it stops writing correct words for good, if it does), the paired difference sentence by
sentence against the same sentences transcribed alone, word-start error, and the speed and
memory of each window as the stream grows. DIR/longform.json gathers the models, and
DIR/wer_by_position.png and DIR/speed_memory.png draw them side by side.
"""

from __future__ import annotations

import shlex
import sys

import dsmlab
from dsmlab.data import LONG_FORM

from . import metrics, options, plots, rundir, runner, stream_scoring, streams
from .records import RecordWriter, read_records, stream_sentences
from .results import environment, print_written, write_json


def main(argv: list[str] | None = None) -> int:
    parser = options.parser("longform", __doc__, several_models=True)
    positive = dsmlab.cli.positive_float
    parser.add_argument("--minutes", type=positive, default=10.0, help="of each stitched stream")
    parser.add_argument("--streams", type=dsmlab.cli.positive_int, default=1, help="stitched")
    parser.add_argument("--gaps", type=positive, nargs=2, default=list(streams.GAPS_S))
    parser.add_argument("--seed", type=dsmlab.cli.non_negative_int, default=0)
    parser.add_argument("--window", type=positive, default=streams.WINDOW_S, help="seconds")
    parser.add_argument(
        "--recordings", action="store_true", help="each row is a whole recording (long-form)"
    )
    parser.add_argument(
        "--no-alone", action="store_true", help="skip transcribing the sentences one at a time"
    )
    args = runner.parse(parser, argv)

    def body() -> int:
        options.fill_defaults(args, "longform", several=True)
        if args.gaps[0] > args.gaps[1]:
            raise dsmlab.UsageError("--gaps: give the shortest silence first")
        recordings = args.recordings or args.dataset in LONG_FORM
        with rundir.opened(args.out):
            plan, audio_of = build(args, recordings)
            rows = [evaluate(args, spec, plan, audio_of) for spec in args.model]
        write_json(args.out / "longform.json", {"command_line": _command(args), "models": rows})
        plots.wer_by_position(rows, args.out / "wer_by_position.png")
        plots.speed_memory(rows, args.out / "speed_memory.png")
        for row in rows:
            print(_line(row))
        print_written(args.out)
        return 0

    return dsmlab.run_cli(body, debug=args.debug)


def build(args, recordings: bool) -> tuple[list[streams.Stream], dict]:
    """The streams to run, and the stitched streams' utterance audio by row."""
    data = options.eval_data(args)
    if recordings:
        found = [u for u in data.undecoded() if u.error is None]
        plan = [streams.Stream(u.id, 0.0, text=u.text, audio=u.source) for u in found]
        if not plan:
            raise dsmlab.DSMLabError(f"{data.name}: no recordings to transcribe")
        return plan, {}
    normalize, _ = options.scoring(args)
    usable = [u for u in data if u.audio is not None and runner.scorable(u.text, normalize)]
    plan = [
        streams.stitch(usable, 60 * args.minutes, args.seed + k, tuple(args.gaps), f"stream{k}")
        for k in range(args.streams)
    ]
    return plan, {u.index: u.audio for u in usable}


def evaluate(args, spec: str, plan: list[streams.Stream], audio_of: dict) -> dict:
    """One model over every stream, into its own directory; its summary row."""
    model = dsmlab.load(spec, device=args.device)
    out = args.out / rundir.model_dirname(spec)
    rundir.prepare(out)
    settings = {k: getattr(args, k) for k in ("minutes", "streams", "gaps", "seed", "window")}
    settings |= options.record_options(args) | {"no_alone": args.no_alone}
    sources = {"dataset": args.dataset, "split": args.split, "max_samples": args.max_samples}
    sources["streams"] = [[s.id for s in p.sentences] or [p.name] for p in plan]
    rundir.claim(out, rundir.identity(model, sources, settings), args.overwrite)
    normalize, merge = options.scoring(args)
    done = {r["index"]: r for r in read_records(out, pattern=rundir.STREAM_RECORDS)}
    with RecordWriter(out / rundir.STREAM_RECORDS) as writer:
        for k, stream in enumerate(plan):
            if k not in done:
                done[k] = stream_record(k, stream, model, audio_of, normalize, merge, args)
                writer.write(done[k])
    records = [done[k] for k in range(len(plan))]
    summaries = [summarize(r, normalize, args.window) for r in records]
    summary = overall(records, summaries)
    command = _command(args)
    write_json(
        out / "results.json",
        {
            "script": "longform",
            "command_line": command,
            "model": model.describe(),
            "data": sources | {"recordings": not audio_of},
            "settings": settings,
            "metrics": summary,
            "streams": summaries,
            "environment": environment(model),
        },
    )
    return {"model": model.name, "delay_s": model.delay_s, **summary}


def stream_record(k, stream, model, audio_of, normalize, merge, args) -> dict:
    """Run one stream, score it; the record that streams.jsonl keeps for it."""
    audio = (
        streams.stitched_audio(stream, audio_of.__getitem__)
        if stream.sentences
        else streams.recording_audio(stream)
    )
    desc = f"{model.name} {stream.name}"
    run = streams.run_stream(model, audio, stream.duration_s or None, args.window, desc)
    stream.duration_s = stream.duration_s or run.audio_s
    sentences, alone = [], None
    if stream.sentences:
        cut = stream_scoring.in_stream_transcripts(stream, run.words, model)
        sentences = stream_scoring.sentence_records(stream, cut, normalize, True, merge)
        if not args.no_alone:
            alone = stream_scoring.sentence_records(
                stream, _alone(model, stream, audio_of), normalize, False, merge
            )
    reference = stream.text or " ".join(s.text for s in stream.sentences)
    hypothesis = " ".join(w.word for w in run.words)
    ref_norm, hyp_norm = normalize(reference), normalize(hypothesis)
    errors = dsmlab.utterance_errors(ref_norm, hyp_norm, merge) if ref_norm else None
    return {
        "index": k,
        "status": "ok",
        "id": stream.name,
        "reference": reference,
        "hypothesis": hypothesis,
        "ref_norm": ref_norm,
        "hyp_norm": hyp_norm,
        "audio_s": round(run.audio_s, 3),
        "wer": errors["word_errors"] / errors["reference_words"] if errors else None,
        "words": [w.to_dict() for w in run.words],
        "sentences": sentences,
        "alone": alone,
        "resources": run.windows,
    }


def summarize(record: dict, normalize, window_s: float) -> dict:
    """One stream's figures, from its record (so a rerun recomputes them from what was kept)."""
    if record["sentences"]:
        sentences, alone = record["sentences"], record["alone"]
        summary = stream_scoring.stream_summary(sentences, record["audio_s"], alone, window_s)
        summary |= metrics.word_time_errors(sentences)
    else:  # a recording: aligned whole
        units = stream_scoring.recording_units(record["reference"], record["words"], normalize)
        summary = stream_scoring.stream_summary(units, record["audio_s"], window_s=window_s)
    return summary | {
        "stream": record["id"],
        "duration_s": record["audio_s"],
        "sentences": len(record["sentences"]),
        "resources": record["resources"],
    }


def _alone(model, stream: streams.Stream, audio_of: dict) -> list[dsmlab.Transcript]:
    """Each distinct utterance of the stream transcribed by itself (Kyutai's padding)."""
    rows = sorted({s.index for s in stream.sentences})
    found = dsmlab.transcribe_batch(
        model, [audio_of[i] for i in rows], [dsmlab.SAMPLE_RATE] * len(rows), batch_size=16
    )
    by_row = dict(zip(rows, found, strict=True))
    return [by_row[s.index] for s in stream.sentences]


def overall(records: list[dict], summaries: list[dict]) -> dict:
    """Over every stream: the summaries' key figures, and the sentences pooled (indices made
    unique per stream) for one WER with interval and one paired difference against alone."""
    found = {
        "streams": len(records),
        "minutes": round(sum(s["duration_s"] for s in summaries) / 60, 2),
        "collapses_s": [s["collapse_s"] for s in summaries],
    }
    pooled, alone = stream_sentences(records), stream_sentences(records, "alone")
    if pooled:
        wer = metrics.wer_metrics(pooled)
        found |= {k: wer.get(k) for k in ("corpus_wer", "corpus_wer_ci95", "utterances")}
        if alone:
            found["alone_corpus_wer"] = metrics.wer_metrics(alone)["corpus_wer"]
            found["in_stream_minus_alone"] = metrics.paired_wer_difference(alone, pooled)
    else:  # whole recordings: their words pooled, the interval over every recording's windows
        found |= stream_scoring.pooled_wer([w for s in summaries for w in s["windows"]])
    longest = max(summaries, key=lambda s: s["duration_s"])
    found |= {
        "windows": longest["windows"],
        "thirds": longest.get("thirds"),
        "worst_window_minus_alone": longest.get("worst_window_minus_alone"),
        "start_abs_median_s": longest.get("start_abs_median_s"),
        "resources": longest["resources"],
    }
    return found


def _line(row: dict) -> str:
    wer = row.get("corpus_wer")
    shown = f"{100 * wer:.1f}%" if wer is not None else "n/a"
    alone = row.get("alone_corpus_wer")
    diff = row.get("in_stream_minus_alone") or {}
    extra = f", alone {100 * alone:.1f}%" if alone is not None else ""
    if diff:
        low, high = diff["ci95"]
        extra += f", in stream - alone {100 * diff['corpus_wer_difference']:+.1f} points "
        extra += f"[{100 * low:+.1f}, {100 * high:+.1f}]"
    return (
        f"{row['model']}: {row['minutes']} min in {row['streams']} stream(s), WER {shown}{extra}, "
        f"collapse: {stream_scoring.collapses(row)}"
    )


def _command(args) -> str:
    return shlex.join(["python", "-m", "eval.longform", *args.argv])


if __name__ == "__main__":
    sys.exit(main())
