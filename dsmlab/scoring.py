"""Word and character error rates: the one implementation training and evaluation share.

Inputs are normalized texts (see `dsmlab.normalizers`); callers do not score an utterance whose
normalized reference is empty (its WER is undefined). Two alignments:
- Levenshtein over words (jiwer), the default;
- `merge_compounds`: the Open ASR Leaderboard's scorer (kaldialign), where a compound split on
  one side and joined on the other ("white paper" / "whitepaper") is no error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jiwer
import kaldialign
import numpy as np


def utterance_errors(
    reference: str, hypothesis: str, merge_compounds: bool = False
) -> dict[str, int]:
    """One utterance's error counts: word_errors (S + D + I), reference_words, char_errors and
    reference_chars. Summed over utterances they give the corpus rates of `error_rates`."""
    if merge_compounds:
        counts = kaldialign.edit_distance(
            reference.split(), hypothesis.split(), merge_compounds=True
        )
        words = {"word_errors": counts["total"], "reference_words": counts["ref_len"]}
    else:
        out = jiwer.process_words(reference, hypothesis)
        words = {
            "word_errors": out.substitutions + out.deletions + out.insertions,
            "reference_words": out.substitutions + out.deletions + out.hits,
        }
    chars = jiwer.process_characters(reference, hypothesis)
    return words | {
        "char_errors": chars.substitutions + chars.deletions + chars.insertions,
        "reference_chars": chars.substitutions + chars.deletions + chars.hits,
    }


def utterance_wer(reference: str, hypothesis: str, merge_compounds: bool = False) -> float:
    """(S + D + I) / reference words of one utterance."""
    counts = utterance_errors(reference, hypothesis, merge_compounds)
    return counts["word_errors"] / counts["reference_words"]


def error_rates(
    references: Sequence[str], hypotheses: Sequence[str], merge_compounds: bool = False
) -> dict:
    """Corpus and mean per-utterance WER and CER, and the word error counts.

    - corpus_wer: all word errors over all reference words (the leaderboard's WER);
    - mean_utterance_wer: the mean of per-utterance WERs (what Kyutai's evaluation script
      reports as `wer`); likewise corpus_cer and mean_utterance_cer over characters.
    """
    references, hypotheses = list(references), list(hypotheses)
    if merge_compounds:
        counts = kaldialign.batch_error_rate(
            [r.split() for r in references],
            [h.split() for h in hypotheses],
            merge_compounds=True,
        )
        errors = {"substitutions": counts["sub"], "deletions": counts["del"]}
        errors |= {"insertions": counts["ins"], "reference_words": counts["ref_len"]}
        corpus_wer = counts["err_rate"]
    else:
        words = jiwer.process_words(references, hypotheses)
        errors = {"substitutions": words.substitutions, "deletions": words.deletions}
        errors |= {"insertions": words.insertions}
        errors["reference_words"] = words.hits + words.substitutions + words.deletions
        corpus_wer = words.wer
    pairs = list(zip(references, hypotheses, strict=True))
    return {
        "corpus_wer": corpus_wer,
        "mean_utterance_wer": float(
            np.mean([utterance_wer(r, h, merge_compounds) for r, h in pairs])
        ),
        "corpus_cer": jiwer.process_characters(references, hypotheses).cer,
        "mean_utterance_cer": float(np.mean([jiwer.cer(r, h) for r, h in pairs])),
        **errors,
        "hits": errors["reference_words"] - errors["substitutions"] - errors["deletions"],
    }


def lookahead_counts(
    reference: str,
    lookahead: Sequence[int],
    hypothesis: str,
    normalize: Callable[[str], str],
    homophones: Sequence[Sequence[str]] | None = None,
) -> dict[str, int]:
    """How the words only right context decides fared (`lookahead`: indices into the
    reference's words, split on spaces) against the rest, in one utterance: lookahead_hits,
    lookahead_errors, lookahead_words, other_errors, other_words, and with `homophones` (for
    each lookahead index, the spellings spoken like that word) lookahead_heard: the lookahead
    words written as one of their spellings, right or not. Both texts are normalized
    word by word (a normalizer that joins words, "twenty five dollars" -> "$25", must not make
    an identical transcript differ from its reference) and aligned (Levenshtein); a lookahead
    word is right when aligned to an equal word; its errors are its
    substitutions and deletions, the rest's also every insertion."""
    spellings = dict(zip(lookahead, homophones or [[] for _ in lookahead], strict=True))
    ref = [
        (token, {normalize(s) for s in spellings[k]} if k in spellings else None)
        for k, word in enumerate(reference.split())
        for token in normalize(word).split()
    ]
    hyp = [token for word in hypothesis.split() for token in normalize(word).split()]
    keys = ("lookahead_hits", "lookahead_errors", "lookahead_words", "other_errors", "other_words")
    counts = dict.fromkeys(keys, 0)
    for _, alike in ref:
        counts["lookahead_words" if alike is not None else "other_words"] += 1
    written: list[str | None] = [None] * len(ref)  # the hypothesis word each is aligned to
    if ref and hyp:
        alignment = jiwer.process_words(" ".join(t for t, _ in ref), " ".join(hyp))
        for chunk in alignment.alignments[0]:
            if chunk.type == "insert":
                counts["other_errors"] += chunk.hyp_end_idx - chunk.hyp_start_idx
            elif chunk.type in ("equal", "substitute"):
                span = chunk.ref_end_idx - chunk.ref_start_idx
                written[chunk.ref_start_idx : chunk.ref_end_idx] = hyp[
                    chunk.hyp_start_idx : chunk.hyp_start_idx + span
                ]
    heard = 0
    for (token, alike), got in zip(ref, written, strict=True):
        ok = got == token
        if alike is not None:
            counts["lookahead_hits"] += ok
            heard += ok or got in alike
        counts["lookahead_errors" if alike is not None else "other_errors"] += not ok
    if homophones is not None:
        counts["lookahead_heard"] = heard
    return counts
