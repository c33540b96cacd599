"""Named text normalizers for WER scoring; a WER must say which one it used.

A WER is computed on normalized text, and normalizers disagree on numbers ("twenty five" vs
"25"), currencies, hyphens and split compounds ("e-mail" -> "e mail" or "email"), British
spellings, fillers ("ah", "huh"), possessives ("john's" -> "john is" or "john s") and letter runs
("b b c" or "bbc"), so the same transcripts get a different WER under each: compare WERs only
when they name the same normalizer.

- `whisper`: OpenAI Whisper's EnglishTextNormalizer (from the `whisper-normalizer` package) for
  English, its BasicTextNormalizer otherwise. Kyutai's evaluation script scores with it, and it is
  what this project used before normalizers were named.
- `oalb`: the Open ASR Leaderboard's current normalizer (see `oalb.py`): derived from Whisper's,
  since changed; for other languages it keeps accents and spells digits out with num2words.
- `none`: only collapses whitespace, keeping case and punctuation: for references that are
  already normalized, or to see the raw errors.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UsageError

NORMALIZERS = ("whisper", "oalb", "none")


def collapse_whitespace(s: str) -> str:
    """The `none` normalizer: runs of whitespace -> one space, no leading or trailing space."""
    return " ".join(s.split())


def get_normalizer(name: str = "whisper", language: str = "en") -> Callable[[str], str]:
    """The normalizer `name` (one of NORMALIZERS) for `language` ("en" picks the English rules)."""
    if name == "whisper":
        from whisper_normalizer.basic import BasicTextNormalizer
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer() if language == "en" else BasicTextNormalizer()
    if name == "oalb":
        from .oalb import oalb_normalizer

        return oalb_normalizer(language)
    if name == "none":
        return collapse_whitespace
    raise UsageError(f"unknown normalizer {name!r}: choose one of {', '.join(NORMALIZERS)}")
