"""Whole sentences spoken by espeak-ng, flite or festival, with each word's start and end.

Words spoken one at a time and glued with gaps (`train.corpus`) sound like nobody speaks: no
coarticulation, no sentence melody. Here a sentence is rendered in one go, and the word times
come from the synthesizer's own account of the audio it made, so they are exact:

- espeak-ng, through its C library: a word event carries the sample where the word starts; a
  word ends where the next one starts, or at a pause phoneme after its first sound, whichever
  comes first (the last word ends at the sentence-final pause).
- flite: `-psdur` prints each phone's end time but no word times, so each word's phone count is
  read from flite itself (the new words said comma-separated in one call, then cached) and the
  sentence's non-pause phones are shared out by those counts. If they do not add up (a rule
  changed a pronunciation in context), `speak` raises rather than guess.
- festival: a Scheme script prints each segment's end and word; a segment of no word (ked's
  linking "r") goes to the word before. HTS voices write their own durations back.

Pauses lie outside every word; leading and trailing silence is kept (times are absolute).
`rate` scales the speaking rate and `pitch` the voice's base pitch, each from the voice's own
default; flite's rms and festival's HTS voice have a fixed pitch.
"""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
import tempfile
import threading
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np
import soundfile

from ..errors import DSMLabError, UsageError

SYNTHESIZERS = ("espeak-ng", "flite", "festival")
APT_PACKAGES = {
    "espeak-ng": "espeak-ng",
    "flite": "flite",
    "festival": "festival festvox-kallpc16k",
}
RATES = (0.5, 2.5)  # the speaking-rate factors accepted
PITCHES = (0.5, 2.0)  # the pitch factors accepted (espeak-ng's pitch parameter spans 0.5 to 2)
FIXED_PITCH = {("flite", "rms"), ("festival", "cmu_us_slt_arctic_hts")}  # measured: same f0


@dataclass(frozen=True)
class Voice:
    synthesizer: str  # one of SYNTHESIZERS
    name: str  # espeak-ng: "en-us+m3" (language+variant); flite: "slt"; festival: "kal_diphone"
    rate: float = 1.0  # speaking-rate factor: 1 = the voice's default, 1.2 = 20% faster
    pitch: float = 1.0  # factor on the voice's base pitch, where the voice has one to set


@dataclass
class Speech:
    audio: np.ndarray  # float32 mono, in [-1, 1]
    sample_rate: int  # the synthesizer's own rate (22050, 16000...)
    words: list[dict]  # [{"word", "start", "end"}] in seconds, in order, not overlapping
    # [{"phone", "start", "end"}] in seconds, back to back, in the synthesizer's own phone set
    # (espeak-ng's names, flite's and festival's radio phones); pauses are "_" / "pau"
    phones: list[dict]


def available(synthesizer: str) -> bool:
    """Whether `synthesizer` is installed (for espeak-ng: its command and its C library)."""
    if synthesizer not in SYNTHESIZERS:
        raise UsageError(f"unknown synthesizer {synthesizer!r}: one of {', '.join(SYNTHESIZERS)}")
    if shutil.which(synthesizer) is None:
        return False
    return synthesizer != "espeak-ng" or _espeak_library() is not None


def voices(synthesizer: str, language: str = "en") -> list[str]:
    """The installed voices of `language`; for espeak-ng every accent alone and with every
    variant ("en-us", "en-us+m3", ...), leaving out the MBROLA voices."""
    _require(synthesizer)
    return list(_voices(synthesizer, language))


def speak(words: list[str], voice: Voice) -> Speech:
    """`words` spoken as one sentence by `voice`: one timed entry per word, in order."""
    _require(voice.synthesizer)
    if not words or any(not isinstance(w, str) or not w or w != "".join(w.split()) for w in words):
        raise UsageError(f"speak needs non-empty words without spaces, not {words!r}")
    if not RATES[0] <= voice.rate <= RATES[1]:
        raise UsageError(f"rate {voice.rate} is outside {RATES[0]} to {RATES[1]}")
    if not PITCHES[0] <= voice.pitch <= PITCHES[1]:
        raise UsageError(f"pitch {voice.pitch} is outside {PITCHES[0]} to {PITCHES[1]}")
    if voice.pitch != 1.0 and (voice.synthesizer, voice.name) in FIXED_PITCH:
        raise UsageError(f"{voice.synthesizer} voice {voice.name!r} has a fixed pitch: use 1")
    if voice.synthesizer != "espeak-ng" and voice.name not in _voices(voice.synthesizer, "en"):
        known = ", ".join(_voices(voice.synthesizer, "en"))
        raise UsageError(f"unknown {voice.synthesizer} voice {voice.name!r}: one of {known}")
    backend = {"espeak-ng": _espeak, "flite": _flite, "festival": _festival}[voice.synthesizer]
    audio, sample_rate, spans, phones = backend([w.lower() for w in words], voice)
    duration, timed, previous_end = len(audio) / sample_rate, [], 0.0
    for word, (start, end) in zip(words, spans, strict=True):
        end = min(end, duration)
        if not previous_end <= start < end:
            raise DSMLabError(f"{voice.synthesizer} gave {word!r} no time of its own")
        timed.append({"word": word, "start": start, "end": end})
        previous_end = end
    segments = [
        {"phone": name, "start": start, "end": min(end, duration)}
        for name, start, end in phones
        if start < min(end, duration)
    ]
    return Speech(np.clip(audio, -1, 1).astype(np.float32), sample_rate, timed, segments)


def _require(synthesizer: str) -> None:
    if not available(synthesizer):
        package = APT_PACKAGES[synthesizer]
        raise DSMLabError(f"{synthesizer} is not installed: apt-get install {package}")


def _run(command: list[str], synthesizer: str) -> str:
    """The stdout of `command`; a failure becomes one line saying what went wrong."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DSMLabError(f"{synthesizer} failed: {error}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        detail = next((line for line in lines if "ERROR" in line), lines[-1] if lines else "")
        raise DSMLabError(f"{synthesizer} failed (exit status {done.returncode}): {detail}")
    return done.stdout


@cache
def _voices(synthesizer: str, language: str) -> tuple[str, ...]:
    if synthesizer == "espeak-ng":
        accents = list(_espeak_accents(language))
        return tuple(accents + [f"{a}+{v}" for a in accents for v in _espeak_variants()])
    if synthesizer == "flite":  # every flite voice is English; awb_time only tells the time
        names = _run(["flite", "-lv"], synthesizer).partition(":")[2].split()
        return tuple(n for n in names if not n.endswith("_time")) if language == "en" else ()
    wanted = {"en": "english"}.get(language, language)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "voices.scm"
        script.write_text(
            '(mapcar (lambda (v) (format t "%s %s\\n" v'
            " (cadr (assoc 'language (cadr (voice.description v)))))) (voice.list))"
        )
        out = _run(["festival", "-b", str(script)], synthesizer)
    return tuple(row[0] for row in map(str.split, out.splitlines()) if row[1:] == [wanted])


# espeak-ng through libespeak-ng: one instance per process, one synthesis at a time.

_ESPEAK_LOCK = threading.Lock()
_ESPEAK_WORD, _ESPEAK_PHONEME = 1, 7  # espeak_EVENT_TYPE


class _EspeakEvent(ctypes.Structure):  # espeak_EVENT, its id union read as char[8]
    _fields_ = [
        (name, ctypes.c_int)
        for name in ("type", "unique_id", "text_position", "length", "audio_position", "sample")
    ] + [("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


@cache
def _espeak_library() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libespeak-ng.so.1")
    except OSError:
        return None


@cache
def _espeak_table(spec: str) -> tuple[tuple[str, str], ...]:
    """(language, voice file) of each voice `espeak-ng --voices=SPEC` lists."""
    out = _run(["espeak-ng", f"--voices={spec}"], "espeak-ng")
    rows = [line.split() for line in out.splitlines()[1:]]  # Pty Language Age/Gender Name File
    return tuple((row[1], row[4]) for row in rows if len(row) >= 5)


def _espeak_accents(language: str) -> dict[str, str]:
    """accent -> voice file ("en-gb" -> "gmw/en"): the library finds a voice by its file, name
    or file's last part, so "en-gb+m3" fails where "gmw/en+m3" works. MBROLA voices left out."""
    accents: dict[str, str] = {}
    for accent, file in _espeak_table(language):
        if (accent == language or accent.startswith(language + "-")) and file[:3] != "mb/":
            accents.setdefault(accent, file)
    return accents


def _espeak_variants() -> list[str]:  # files "!v/m3"
    return [file[3:] for _, file in _espeak_table("variant") if file.startswith("!v/")]


class _Espeak:
    """The library, initialised once for synchronous synthesis with phoneme events."""

    def __init__(self):
        self.lib = _espeak_library()
        # AUDIO_OUTPUT_SYNCHRONOUS; phoneme events, and no exit() when the data is missing
        self.sample_rate = self.lib.espeak_Initialize(2, 0, None, 0x0001 | 0x8000)
        if self.sample_rate <= 0:
            raise DSMLabError("espeak-ng did not start: apt-get install --reinstall espeak-ng-data")
        self.chunks, self.events = [], []
        self.callback = _SYNTH_CALLBACK(self._collect)  # kept alive: the library points to it
        self.lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, wav, count, events) -> int:
        if count > 0 and wav:
            self.chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            event = events[i]
            if event.type in (_ESPEAK_WORD, _ESPEAK_PHONEME):
                self.events.append((event.type, event.text_position, event.sample, event.id))
            i += 1
        return 0

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, list]:
        accent, _, variant = voice.name.partition("+")
        if variant and variant not in _espeak_variants():  # the library would just ignore it
            raise UsageError(f"unknown espeak-ng variant {variant!r} in {voice.name!r}")
        name = _espeak_accents(accent.split("-")[0]).get(accent, accent) + "+" * bool(variant)
        if self.lib.espeak_SetVoiceByName((name + variant).encode()) != 0:
            raise UsageError(f"unknown espeak-ng voice {voice.name!r}: see voices('espeak-ng')")
        self.lib.espeak_SetParameter(1, round(175 * voice.rate), 0)  # RATE, words per minute
        self.lib.espeak_SetParameter(3, round(50 + 50 * math.log2(voice.pitch)), 0)  # PITCH
        self.chunks, self.events = [], []
        data = text.encode()  # POS_CHARACTER text positions, CHARS_AUTO (UTF-8)
        error = self.lib.espeak_Synth(data, ctypes.c_size_t(len(data) + 1), 0, 1, 0, 0, None, None)
        if error != 0 or self.lib.espeak_Synchronize() != 0:
            raise DSMLabError(f"espeak-ng could not speak {text!r} (error {error})")
        audio = np.concatenate([np.zeros(0, np.int16), *self.chunks]).astype(np.float32)
        return audio / 32768, self.events


_ESPEAK: _Espeak | None = None


def _espeak(words: list[str], voice: Voice):
    """Its dictionary says some word pairs as one word ("on the"), with one word event: such
    pairs are spoken again with a no-break space between them (one character too), which
    keeps them apart."""
    global _ESPEAK
    offsets = np.cumsum([0] + [len(w) + 1 for w in words[:-1]]).tolist()  # in the text
    separators = [" "] * len(words)  # before each word
    while True:
        text = "".join(s + w for s, w in zip(separators, words, strict=True))[1:]
        with _ESPEAK_LOCK:
            _ESPEAK = _ESPEAK or _Espeak()
            audio, events = _ESPEAK.synthesize(text, voice)
            rate = _ESPEAK.sample_rate
        spans = _espeak_spans(events, offsets)
        if 0 not in spans and 1 in spans:  # en-us-nyc gives a sentence's first word no event
            sounds = [
                s for kind, _, s, name in events if kind == _ESPEAK_PHONEME and name[:1] != b"_"
            ]
            spans[0] = [min(sounds, default=0), spans[1][0]]
        missing = [i for i in range(len(words)) if i not in spans]
        if not missing:
            break
        if 0 in missing or "\u00a0" in (separators[i] for i in missing):
            raise DSMLabError(f"espeak-ng did not speak {words[missing[0]]!r} in {text!r}")
        for i in missing:
            separators[i] = "\u00a0"
    ends = [len(audio) if spans[i][1] is None else spans[i][1] for i in range(len(words))]
    starts = [
        (name.decode(errors="replace"), sample)
        for kind, _, sample, name in events
        if kind == _ESPEAK_PHONEME
    ]
    phones = [
        (name, sample / rate, (starts[k + 1][1] if k + 1 < len(starts) else len(audio)) / rate)
        for k, (name, sample) in enumerate(starts)
    ]
    return audio, rate, [(spans[i][0] / rate, end / rate) for i, end in enumerate(ends)], phones


def _espeak_spans(events: list, offsets: list[int]) -> dict[int, list]:
    """word index -> [start, end or None] in samples, from the word and phoneme events."""
    spans: dict[int, list] = {}
    current, sounded = None, False  # the word being spoken; whether it has made a sound yet
    for kind, position, sample, name in events:
        if kind == _ESPEAK_WORD:  # a word's own event, or the next of its words ("42")
            if current is not None and spans[current][1] is None:
                spans[current][1] = sample
            current, sounded = bisect_right(offsets, position - 1) - 1, False
            spans.setdefault(current, [sample, None])[1] = None
        elif not name.startswith(b"_"):
            sounded = current is not None
        elif sounded and spans[current][1] is None:  # a pause after the word's sounds
            spans[current][1] = sample
    return spans


# flite: phone end times from -psdur, shared out by each word's phone count.

_FLITE_PHONES: dict[tuple[str, str], int] = {}  # (voice, word) -> phones when said alone


def _flite_phone_counts(words: list[str], name: str) -> list[int]:
    new = sorted({w for w in words if (name, w) not in _FLITE_PHONES})
    if new:  # "w1, w2, w3": each word its own phrase, between pauses
        out = _run(["flite", "-voice", name, "-ps", "-t", ", ".join(new), "-o", "none"], "flite")
        counts = [len(phrase.split()) for phrase in out.split("pau") if phrase.strip()]
        if len(counts) != len(new):
            raise DSMLabError(f"flite did not say each of {new} as a phrase of its own")
        _FLITE_PHONES.update({(name, w): n for w, n in zip(new, counts, strict=True)})
    return [_FLITE_PHONES[name, w] for w in words]


def _flite(words: list[str], voice: Voice):
    text = " ".join(words)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        settings = [f"duration_stretch={1 / voice.rate:.6g}", f"f0_shift={voice.pitch:.6g}"]
        command = ["flite", "-voice", voice.name, "--setf", settings[0], "--setf", settings[1]]
        out = _run([*command, "-psdur", "-t", text, "-o", str(path)], "flite")
        audio, sample_rate = soundfile.read(path, dtype="float32")
    phones, segments, start = [], [], 0.0  # (start, end) of each phone that is not a pause
    for item in out.split():  # "pau:0.184 dh:0.241 ax:0.270 ..."
        phone, _, end = item.rpartition(":")
        if phone != "pau":
            phones.append((start, float(end)))
        segments.append((phone, start, float(end)))
        start = float(end)
    counts = _flite_phone_counts(words, voice.name)
    if sum(counts) != len(phones):
        raise DSMLabError(
            f"flite said {text!r} in {len(phones)} phones but its words alone in {sum(counts)}:"
            " a pronunciation changed in context, so the word times are unknown"
        )
    bounds = pairwise(np.cumsum([0] + counts).tolist())
    return audio, sample_rate, [(phones[a][0], phones[b - 1][1]) for a, b in bounds], segments


# festival: one Scheme script per sentence.

_FESTIVAL_SCRIPT = """(voice_{name})
(if (equal? (Parameter.get 'Synth_Method) 'HTS)
  (set! hts_engine_params (cons (list "-r" {rate}) hts_engine_params))
  (begin
    (Parameter.set 'Duration_Stretch (/ (or (Parameter.get 'Duration_Stretch) 1) {rate}))
    (set! int_lr_params
      (mapcar (lambda (p) (if (member (car p) '(target_f0_mean target_f0_std))
                            (list (car p) (* {pitch} (cadr p))) p))
              int_lr_params))))
(set! utt (utt.synth (eval (list 'Utterance 'Text "{text}"))))
(utt.save.wave utt "{wav}" 'riff)
(set! token (utt.relation.first utt 'Token))
(set! index 0)
(while token
  (set! index (+ index 1))
  (item.set_feat token "dsmlab_word" index)
  (set! token (item.next token)))
(mapcar (lambda (s) (format t "%s %s %s\\n" (item.name s) (item.feat s "end")
          (item.feat s "R:SylStructure.parent.parent.R:Token.parent.dsmlab_word")))
        (utt.relation.items utt 'Segment))
"""


def _festival(words: list[str], voice: Voice):
    text = " ".join(words).replace("\\", "\\\\").replace('"', '\\"')
    rate, pitch = f"{voice.rate:.6g}", f"{voice.pitch:.6g}"
    with tempfile.TemporaryDirectory() as tmp:
        wav, script = Path(tmp) / "speech.wav", Path(tmp) / "speak.scm"
        fields = {"name": voice.name, "rate": rate, "pitch": pitch, "text": text, "wav": wav}
        script.write_text(_FESTIVAL_SCRIPT.format(**fields))
        out = _run(["festival", "-b", str(script)], "festival")
        audio, sample_rate = soundfile.read(wav, dtype="float32")
    spans: dict[int, list[float]] = {}  # word index -> [start, end] in seconds
    start, last, segments = 0.0, None, []
    for line in out.splitlines():  # segment, its end, its word (1, 2, ...; 0: none)
        segment, end, word = line.split()
        segments.append((segment, start, float(end)))
        if int(word):
            last = int(word) - 1
            spans.setdefault(last, [start, 0.0])[1] = float(end)
        elif segment not in ("pau", "h#") and last is not None:  # a linking "r" between words
            spans[last][1] = float(end)
        start = float(end)
    if set(spans) != set(range(len(words))):
        raise DSMLabError(f"festival did not speak each word of {' '.join(words)!r}")
    return audio, sample_rate, [tuple(spans[i]) for i in range(len(words))], segments
