"""The Open ASR Leaderboard's text normalizers, reimplemented from its rules.

Rules read from https://github.com/huggingface/open_asr_leaderboard (Apache-2.0) at commit
d1e99b25524814332d6868a5645e568670834cfb: `normalizer/normalizer.py` (EnglishTextNormalizer,
BasicMultilingualTextNormalizer), `normalizer/english_abbreviations.py` (word tables, kept as
data in `oalb_tables.json`, entries and order as in the source) and `normalizer/data_utils.py`
(which normalizer the leaderboard applies, and the digit spelling it adds for other languages).
The tests compare this module with the leaderboard's own code on probe strings.

English: the leaderboard started from Whisper's EnglishTextNormalizer and changed it: more fillers
are dropped, fewer slang forms are expanded, "'s" becomes "is" only after a few pronouns, split
compounds are joined ("e mail" -> "email"), names get one spelling, runs of single letters are
joined ("b b c" -> "bbc"), and its spelling table differs. Its spelled-number rules are Whisper's
unchanged (the two differ only in an assertion and a loop idiom), so the number step reuses
`whisper_normalizer`'s EnglishNumberNormalizer rather than copying 300 lines of state machine.

Other languages: the leaderboard scores with its BasicMultilingualTextNormalizer built with
`remove_diacritics=False`, then spells digits out with `num2words` in the dataset's language.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from whisper_normalizer.basic import ADDITIONAL_DIACRITICS
from whisper_normalizer.english import EnglishNumberNormalizer

from ..errors import DSMLabError

SOURCE = "huggingface/open_asr_leaderboard@d1e99b25524814332d6868a5645e568670834cfb"

# The leaderboard's word tables (Apache-2.0): British -> American spellings (descended from
# Whisper's english.json, MIT, but not identical: ok/kay -> okay, flyer -> flier, ...), variant
# names -> one form, and word pairs joined after hyphens go (in this order).
_TABLES = json.loads((Path(__file__).with_name("oalb_tables.json")).read_text(encoding="utf-8"))
SPELLINGS: dict[str, str] = _TABLES["spellings"]
NAMES: dict[str, str] = _TABLES["names"]
COMPOUNDS: tuple[tuple[str, str], ...] = tuple(tuple(pair) for pair in _TABLES["compounds"])

# Hesitations dropped as whole words (Whisper drops only the first five).
FILLERS = (
    "hmm", "mm", "mhm", "mmm", "uh", "um", "ah", "aha", "ahh", "ahm",
    "eh", "ehehe", "em", "hm", "huh", "hum", "mhum", "uhm", "umm", "uhuh",
)  # fmt: skip

# Whole words rewritten, in this order, before punctuation goes (an apostrophe is still there).
# Unlike Whisper, "kinda", "sorta", "dunno" and "cause" are kept as they are.
SLANG = (
    ("won't", "will not"),
    ("can't", "can not"),
    ("let's", "let us"),
    ("ain't", "aint"),
    ("y'all", "you all"),
    ("wanna", "want to"),
    ("gotta", "got to"),
    ("gonna", "going to"),
    ("i'ma", "i am going to"),
    ("imma", "i am going to"),
    ("woulda", "would have"),
    ("coulda", "could have"),
    ("shoulda", "should have"),
    ("ma'am", "madam"),
)

# Abbreviated titles, as whole words (the period is removed later, so "mr." and "mr" both match).
TITLES = (
    ("mr", "mister"),
    ("mrs", "missus"),
    ("st", "saint"),
    ("dr", "doctor"),
    ("prof", "professor"),
    ("capt", "captain"),
    ("gov", "governor"),
    ("ald", "alderman"),
    ("gen", "general"),
    ("sen", "senator"),
    ("rep", "representative"),
    ("pres", "president"),
    ("rev", "reverend"),
    ("hon", "honorable"),
    ("asst", "assistant"),
    ("assoc", "associate"),
    ("lt", "lieutenant"),
    ("col", "colonel"),
    ("jr", "junior"),
    ("sr", "senior"),
    ("esq", "esquire"),
)

# "'s" is only "is" after these words; elsewhere it is a possessive and loses its apostrophe
# ("john's" -> "john s"), where Whisper writes "john is".
S_IS_AFTER = (
    "it", "he", "she", "what", "that", "who", "here", "there", "how", "when", "where", "why",
    "this",
)  # fmt: skip

# Contraction endings, in this order: perfect tenses first, then the general endings.
ENDINGS = (
    ("'d been", " had been"),
    ("'s been", " has been"),
    ("'d gone", " had gone"),
    ("'s gone", " has gone"),
    ("'d done", " had done"),  # "'s done" is ambiguous
    ("'s got", " has got"),
    ("n't", " not"),
    ("'re", " are"),
    ("'s", " is"),  # only after S_IS_AFTER, see _rewrites
    ("'d", " would"),
    ("'ll", " will"),
    ("'t", " not"),
    ("'ve", " have"),
    ("'m", " am"),
)

# Symbols a number can carry; kept through symbol removal, dropped later when no digit is beside.
NUMERIC_SYMBOLS = ".%$¢€£"


def _rewrites() -> list[tuple[re.Pattern[str], str]]:
    """The leaderboard's contraction and title rules as ordered (regex, replacement) pairs."""
    rules = [(re.compile(rf"\b{re.escape(word)}\b"), out) for word, out in SLANG]
    # A title's replacement ends with a space, as in the source ("mr.x" -> "mister .x").
    rules += [(re.compile(rf"\b{word}\b"), f"{full} ") for word, full in TITLES]
    for ending, out in ENDINGS:
        if ending == "'s":
            rules.append((re.compile(rf"\b({'|'.join(S_IS_AFTER)})'s\b"), r"\1 is"))
        else:
            rules.append((re.compile(rf"{re.escape(ending)}\b"), out))
    return rules


def strip_symbols(s: str, keep: str = "", drop_diacritics: bool = True) -> str:
    """Marks, symbols and punctuation (Unicode categories M*, S*, P*) -> a space, except `keep`.

    With `drop_diacritics` (the English path) the text is decomposed (NFKD) and accents are dropped
    ("é" -> "e", "ß" -> "ss"); without it (other languages) the text is composed (NFKC), so accented
    letters stay whole and only stray combining marks become spaces.
    """
    if not drop_diacritics:
        s = unicodedata.normalize("NFKC", s)
        return "".join(" " if unicodedata.category(c)[0] in "MSP" else c for c in s)
    out = []
    for c in unicodedata.normalize("NFKD", s):
        category = unicodedata.category(c)
        if c in keep:
            out.append(c)
        elif c in ADDITIONAL_DIACRITICS:  # letters NFKD does not split, e.g. "ø" -> "o"
            out.append(ADDITIONAL_DIACRITICS[c])
        elif category == "Mn":  # a combining accent
            continue
        else:
            out.append(" " if category[0] in "MSP" else c)
    return "".join(out)


def drop_bracketed(s: str) -> str:
    """Drop "[...]" and "<...>" spans (event tags) and "(...)" spans (asides), as Whisper does."""
    s = re.sub(r"[<\[][^>\]]*[>\]]", "", s)
    return re.sub(r"\(([^)]+?)\)", "", s)


def join_letter_runs(words: list[str]) -> list[str]:
    """Join runs of one-character tokens: "b b c" -> "bbc", "5 g" -> "5g".

    A run holding the words "a" or "i" must be at least 3 tokens long, so "i 5" stays apart but
    "a b c" -> "abc" (and "5 g a big cat" -> "5ga big cat": the rule does not look at meaning).
    """
    out: list[str] = []
    for single, group in itertools.groupby(words, key=lambda w: len(w) == 1 and w.isalnum()):
        run = list(group)
        shortest = 3 if any(w in ("a", "i") for w in run) else 2
        if single and len(run) >= shortest:
            out.append("".join(run))
        else:
            out.extend(run)
    return out


class OALBEnglishNormalizer:
    """The leaderboard's EnglishTextNormalizer: lowercase, drop tags and fillers, expand
    contractions and titles, strip symbols and accents, join split compounds, write numbers as
    digits, Americanize spellings, unify names, join spelled-out letters."""

    def __init__(self) -> None:
        self._fillers = re.compile(rf"\b({'|'.join(FILLERS)})\b")
        self._rewrites = _rewrites()
        self._compounds = [
            (re.compile(r"\b" + r"\s+".join(pair.split()) + r"\b"), joined)
            for pair, joined in COMPOUNDS
        ]
        self._numbers = EnglishNumberNormalizer()

    def __call__(self, s: str) -> str:
        s = drop_bracketed(s.lower())
        s = self._fillers.sub("", s)
        s = re.sub(r"\s+'", "'", s)  # "rock 'n" -> "rock'n": an apostrophe sticks to the word
        for pattern, replacement in self._rewrites:
            s = pattern.sub(replacement, s)
        s = re.sub(r"(\d),(\d)", r"\1\2", s)  # thousands separators: "1,000" -> "1000"
        s = re.sub(r"\.([^0-9]|$)", r" \1", s)  # periods, except decimal points
        s = strip_symbols(s, keep=NUMERIC_SYMBOLS)
        for pattern, joined in self._compounds:
            s = pattern.sub(joined, s)
        s = self._numbers(s)
        words = [SPELLINGS.get(w, w) for w in s.split()]
        words = [NAMES.get(w, w) for w in words]
        s = " ".join(join_letter_runs(words))
        # Currency signs and periods not before a digit, and "%" not after one, become spaces.
        s = re.sub(r"[.$¢€£]([^0-9])", r" \1", s)
        s = re.sub(r"([^0-9])%", r"\1 ", s)
        return re.sub(r"\s+", " ", s)  # like the source, does not strip a trailing space


class OALBMultilingualNormalizer:
    """What the leaderboard applies to non-English text: lowercase, drop tags, replace symbols
    and punctuation by spaces keeping accents, drop what is neither a word character nor a space,
    then spell digits out in `language` with num2words ("3" -> "trois" for French)."""

    def __init__(self, language: str) -> None:
        self.language = language

    def __call__(self, s: str) -> str:
        s = drop_bracketed(s.lower())
        s = strip_symbols(s, drop_diacritics=False).lower()
        s = re.sub(r"[^\w\s]", "", s)
        s = re.sub(r"\s+", " ", s).strip()
        return spell_digits(s, self.language)


def spell_digits(s: str, language: str) -> str:
    """Digit runs -> words in `language`, as the leaderboard's MultilingualNormalizer does.

    A space before a group of three digits is first closed ("10 000" -> "10000"), once from the
    left, so "1 000 000" becomes "1000 000" and is read as two numbers, as in the source. A number
    num2words cannot write (e.g. an unknown language) stays digits.
    """
    if not re.search(r"\d", s):
        return s
    num2words = _num2words()
    s = re.sub(r"(\d)\s+(\d{3})\b", r"\1\2", s)

    def spell(m: re.Match[str]) -> str:
        try:
            return num2words(int(m.group()), lang=language)
        except Exception:  # the source keeps the digits on any num2words failure
            return m.group()

    return re.sub(r"\d+", spell, s)


def _num2words() -> Callable[..., str]:
    """num2words, imported only when non-English text has digits: rather fail than give a
    WER that silently differs from the leaderboard's."""
    try:
        from num2words import num2words
    except ImportError as e:
        raise DSMLabError(
            "the oalb normalizer spells digits out with num2words for non-English text, "
            "as the Open ASR Leaderboard does: pip install num2words"
        ) from e
    return num2words


def oalb_normalizer(language: str = "en") -> Callable[[str], str]:
    """The leaderboard's normalizer for `language`: English, or the multilingual one."""
    return OALBEnglishNormalizer() if language == "en" else OALBMultilingualNormalizer(language)
