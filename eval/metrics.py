"""Every metric, computed once: WER/CER (jiwer), word matching, timestamp error, tcpWER
(meeteval), latency. Inputs are the utterance records of `utterances.jsonl`."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Sequence

import jiwer
import numpy as np

import dsmlab
from dsmlab import intervals

TOLERANCES_S = (0.04, 0.08, 0.2)


def word_tokens(words: Sequence[dict], normalize: Callable[[str], str]) -> list[dict]:
    """Timed words -> normalized tokens; a word that normalizes to several keeps its times."""
    tokens = []
    for w in words:
        for token in normalize(str(w["word"])).split():
            tokens.append({**w, "word": token})
    return tokens


def match_words(
    ref_words: Sequence[dict], hyp_words: Sequence[dict], normalize: Callable[[str], str]
) -> list[dict]:
    """Reference and hypothesis words paired through the WER alignment (hits only)."""
    ref, hyp = word_tokens(ref_words, normalize), word_tokens(hyp_words, normalize)
    if not ref or not hyp:
        return []
    output = jiwer.process_words(" ".join(w["word"] for w in ref), " ".join(w["word"] for w in hyp))
    matches = []
    for chunk in output.alignments[0]:
        if chunk.type != "equal":
            continue
        for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
            r, h = ref[chunk.ref_start_idx + k], hyp[chunk.hyp_start_idx + k]
            matches.append(
                {
                    "word": r["word"],
                    "ref_start": r["start"],
                    "ref_end": r["end"],
                    "hyp_start": h["start"],
                    "hyp_end": h["end"],
                    "emitted": h.get("emitted"),
                    "latency": None
                    if h.get("emitted") is None
                    else round(h["emitted"] - r["end"], 4),
                }
            )
    return matches


def wer_metrics(records: Sequence[dict], merge_compounds: bool = False) -> dict:
    """Corpus and mean per-utterance WER and CER, and the error counts, on normalized text
    (see `dsmlab.error_rates`); failed and skipped rows are counted, not scored."""
    scored = [r for r in records if r["status"] == "ok"]
    summary = {
        "utterances": len(scored),
        "failed": sum(r["status"] == "failed" for r in records),
        "skipped": sum(r["status"] == "skipped" for r in records),
        "audio_s": round(sum(r["audio_s"] for r in scored), 3),
    }
    if not scored:
        return summary
    summary |= dsmlab.error_rates(
        [r["ref_norm"] for r in scored], [r["hyp_norm"] for r in scored], merge_compounds
    )
    return summary | wer_intervals(scored)


def lookahead_metrics(records: Sequence[dict], normalize: Callable[[str], str]) -> dict:
    """Accuracy on the reference words only right context decides (a record's `lookahead`
    indices into its reference's words), and the error rates of those words and of the rest,
    apart. Each reference word is normalized alone and the words aligned to the normalized
    hypothesis (Levenshtein); a lookahead word is right when aligned to an equal word. Its
    error rate counts its substitutions and deletions; the rest's also every insertion.
    Where the records carry `homophones` (the spellings spoken like each lookahead word),
    `lookahead_choice_accuracy`: of the lookahead words written as one of their spellings, the
    share written right. It parts the choice only right context makes from hearing the word at
    all, which `lookahead_accuracy` counts too."""
    marked = [r for r in records if r["status"] == "ok" and r.get("lookahead") is not None]
    if not marked:
        return {}
    counts = [
        dsmlab.lookahead_counts(
            r["reference"], r["lookahead"], r["hypothesis"], normalize, r.get("homophones")
        )
        for r in marked
    ]
    summary = {"lookahead_utterances": len(marked)}
    for name, (num, den) in {
        "lookahead_accuracy": ("lookahead_hits", "lookahead_words"),
        "lookahead_wer": ("lookahead_errors", "lookahead_words"),
        "other_wer": ("other_errors", "other_words"),
        "lookahead_choice_accuracy": ("lookahead_hits", "lookahead_heard"),
    }.items():
        if any(den not in c for c in counts):
            continue
        found = intervals.ratio([c[num] for c in counts], [c[den] for c in counts])
        if found is not None:
            summary[name] = round(found[0], 6)
            summary[f"{name}_ci95"] = [round(found[1], 6), round(found[2], 6)]
    summary["lookahead_words"] = sum(c["lookahead_words"] for c in counts)
    if all("lookahead_heard" in c for c in counts):
        summary["lookahead_heard"] = sum(c["lookahead_heard"] for c in counts)
    return summary


def wer_intervals(scored: Sequence[dict]) -> dict:
    """95% bootstrap intervals over utterances of the corpus and mean WER and the corpus CER."""
    words = intervals.ratio(
        [r["word_errors"] for r in scored], [r["reference_words"] for r in scored]
    )
    chars = intervals.ratio(
        [r["char_errors"] for r in scored], [r["reference_chars"] for r in scored]
    )
    mean = intervals.mean([r["wer"] for r in scored])
    return {
        f"{name}_ci95": [round(found[1], 6), round(found[2], 6)]
        for name, found in (
            ("corpus_wer", words),
            ("mean_utterance_wer", mean),
            ("corpus_cer", chars),
        )
        if found is not None
    }


def timestamp_metrics(
    records: Sequence[dict], normalize: Callable[[str], str], collar_s: float = 0.2
) -> dict:
    """`word_time_errors`, and tcpWER (meeteval)."""
    timed = [r for r in records if r["status"] == "ok" and r.get("ref_words")]
    summary = word_time_errors(records)
    if timed:
        summary["tcpwer"] = tcpwer(timed, normalize, collar_s)
        summary["tcpwer_collar_s"] = collar_s
    return summary


def word_time_errors(records: Sequence[dict]) -> dict:
    """Start/end error of matched words and the share within tolerances."""
    timed = [r for r in records if r["status"] == "ok" and r.get("ref_words")]
    matches = [m for r in timed for m in r["matches"]]
    summary: dict = {
        "timed_utterances": len(timed),
        "matched_words": len(matches),
        "reference_words": sum(len(r["ref_words"]) for r in timed),
    }
    if matches:
        for edge in ("start", "end"):
            errors = np.abs([m[f"hyp_{edge}"] - m[f"ref_{edge}"] for m in matches])
            summary[f"{edge}_abs_mean_s"] = float(errors.mean())
            summary[f"{edge}_abs_median_s"] = float(np.median(errors))
            groups = [
                [abs(m[f"hyp_{edge}"] - m[f"ref_{edge}"]) for m in r["matches"]] for r in timed
            ]
            found = intervals.pooled(groups)
            summary[f"{edge}_abs_median_s_ci95"] = [round(found[1], 4), round(found[2], 4)]
            for tol in TOLERANCES_S:
                summary[f"{edge}_within_{round(tol * 1000)}ms"] = float((errors <= tol).mean())
    return summary


def tcpwer(records: Sequence[dict], normalize: Callable[[str], str], collar_s: float) -> float:
    """Time-constrained WER over utterances (one session each), from meeteval."""
    from meeteval.wer import combine_error_rates
    from meeteval.wer import tcpwer as meeteval_tcpwer

    def segments(record: dict, key: str) -> list[dict]:
        return [
            {
                "session_id": str(record["index"]),
                "speaker": "A",
                "start_time": w["start"],
                "end_time": max(w["end"], w["start"]),
                "words": w["word"],
            }
            for w in word_tokens(record[key], normalize)
        ]

    ref = [s for r in records for s in segments(r, "ref_words")]
    hyp = [s for r in records for s in segments(r, "words")]
    # meeteval complains on stderr when words outlast the collar; the number is what we need.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        per_session = meeteval_tcpwer(
            ref,
            hyp,
            collar=collar_s,
            ref_pseudo_word_timing="equidistant_intervals",
            hyp_pseudo_word_timing="equidistant_intervals",
        )
    return float(combine_error_rates(*per_session.values()).error_rate)


def latency_metrics(records: Sequence[dict]) -> dict:
    """Per-word lag behind the reference word's end and its start (matched words; medians with
    95% bootstrap intervals over utterances), and finalization without flush."""
    ok = [r for r in records if r["status"] == "ok"]
    lags = {
        "word_latency": [
            [m["latency"] for m in r.get("matches", []) if m["latency"] is not None] for r in ok
        ],
        "word_lag_from_start": [
            [
                m["emitted"] - m["ref_start"]
                for m in r.get("matches", [])
                if m["emitted"] is not None
            ]
            for r in ok
        ],
    }
    finals = [r["finalization_s"] for r in ok if r.get("finalization_s") is not None]
    summary: dict = {"latency_words": sum(len(g) for g in lags["word_latency"])}
    for name, groups in lags.items():
        summary |= _stats(name, [v for g in groups for v in g])
        found = intervals.pooled(groups)
        if found is not None:
            summary[f"{name}_median_s_ci95"] = [round(found[1], 4), round(found[2], 4)]
    summary |= _stats("finalization_no_flush", finals)
    return summary


def finalization_s(hyp_words: Sequence[dict], audio_s: float) -> float | None:
    """Audio time from the end of the audio until the last word came out (0 if before)."""
    if not hyp_words:
        return None
    return round(max(0.0, max(w["emitted"] for w in hyp_words) - audio_s), 4)


def step_metrics(
    step_s: float,
    batch_size: int,
    frame_s: float = 1 / dsmlab.FRAME_RATE,
) -> dict:
    """What one step costs at `batch_size`, and the live streams that allows."""
    return {
        "step_ms": step_s * 1000,
        "step_batch_size": batch_size,
        "realtime_factor": frame_s / step_s,
        # optimistic: assumes the step cost does not grow with the batch beyond `batch_size`
        "streams_realtime_estimate": int(batch_size * frame_s / step_s),
    }


def _stats(name: str, values: Sequence[float]) -> dict:
    if not values:
        return {}
    v = np.asarray(values, dtype=float)
    return {
        f"{name}_median_s": float(np.median(v)),
        f"{name}_p90_s": float(np.percentile(v, 90)),
        f"{name}_max_s": float(v.max()),
        f"{name}_mean_s": float(v.mean()),
    }


def delay_pairs(runs: Sequence[tuple[str, float, Sequence[dict]]]) -> list[tuple]:
    """The pairs of (name, delay, records) runs a sweep compares. Within a family (the
    fixed-delay models; each delay-conditioned model, its runs named base@delay): each delay
    against the next longer one, and the shortest against the longest when there are more than
    two. Across families: runs at the same delay, the fixed-delay model first."""
    families: dict[str, list] = {}
    for run in sorted(runs, key=lambda run: run[1]):
        families.setdefault(dsmlab.model_family(run[0]), []).append(run)
    pairs = []
    for members in families.values():
        pairs += list(zip(members, members[1:], strict=False))
        if len(members) > 2:
            pairs.append((members[0], members[-1]))
    ordered = sorted(families.items())  # "" (the fixed-delay models) first
    for i, (_, members) in enumerate(ordered):
        for _, others in ordered[i + 1 :]:
            pairs += [(a, b) for a in members for b in others if dsmlab.same_delay(a[1], b[1])]
    return pairs


def paired_wer_differences(runs: Sequence[tuple[str, float, Sequence[dict]]]) -> list[dict]:
    """Corpus WER differences between the `delay_pairs` of runs (name, delay, records), each
    as `paired_wer_difference` gives it."""
    found = []
    for (name_a, _, records_a), (name_b, _, records_b) in delay_pairs(runs):
        difference = paired_wer_difference(records_a, records_b)
        if difference is not None:
            found.append({"from": name_a, "to": name_b, **difference})
    return found


def paired_wer_difference(records_a: Sequence[dict], records_b: Sequence[dict]) -> dict | None:
    """Corpus WER of b minus a on the utterances both scored, with its paired 95% bootstrap
    interval over those utterances, and the two WERs there; None when they share none.
    `real`: the interval excludes 0. Utterances are matched by row index; a row whose
    reference differs between the two is a mistake (the runs were on different data) and an
    error."""
    a = {r["index"]: r for r in records_a if r["status"] == "ok"}
    b = {r["index"]: r for r in records_b if r["status"] == "ok"}
    common = sorted(set(a) & set(b))
    if not common:
        return None
    differing = [i for i in common if a[i]["reference"] != b[i]["reference"]]
    if differing:
        raise dsmlab.UsageError(
            f"row {differing[0]} has another reference in each run ({len(differing)} rows "
            "differ): the runs were not on the same utterances"
        )
    counts = [
        ([d[i]["word_errors"] for i in common], [d[i]["reference_words"] for i in common])
        for d in (a, b)
    ]
    difference, low, high = intervals.paired_ratio_difference(*counts)
    return {
        "utterances": len(common),
        "corpus_wers": [round(sum(errors) / sum(words), 6) for errors, words in counts],
        "corpus_wer_difference": round(difference, 6),
        "ci95": [round(low, 6), round(high, 6)],
        "real": bool(low > 0 or high < 0),
    }
