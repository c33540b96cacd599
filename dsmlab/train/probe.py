"""The lookahead probe spoken by any synthesizer (`python -m dsmlab.train.corpus --probe-text
FILE --speak COMMAND`): the corpus's own probe sentences, so that released models, which never
heard the corpus's synthesizers, can be scored on them."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from tqdm import tqdm

from ..errors import UsageError


def speak_probe(lines: list[dict], probe_file: Path, command: str) -> None:
    """Speak each line's text with `command` (a template with {text} and {wav}) into
    <probe_file's stem>/NNNN.wav and add its path, relative to probe_file, as the line's audio:
    the probe then reads as a JSON Lines dataset, with any synthesizer's voice."""
    if "{text}" not in command or "{wav}" not in command:
        raise UsageError(f"--speak needs {{text}} and {{wav}} in its command; got {command!r}")
    folder = probe_file.parent / probe_file.stem
    folder.mkdir(parents=True, exist_ok=True)
    for k, line in enumerate(tqdm(lines, desc="speaking the probe")):
        wav = folder / f"{k:04d}.wav"
        argv = [
            part.replace("{text}", line["text"]).replace("{wav}", str(wav))
            for part in shlex.split(command)
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True)
        except OSError as error:
            raise UsageError(f"--speak could not run {argv[0]!r}: {error.strerror}") from None
        if done.returncode != 0 or not wav.exists():
            why = done.stderr.strip()[-200:] or f"it wrote no {wav}"
            raise UsageError(f"--speak failed on line {k} ({shlex.join(argv)}): {why}")
        line["audio"] = str(wav.relative_to(probe_file.parent))
