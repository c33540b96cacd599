"""Small local datasets for the eval tests, in each layout the runner reads."""

import io
import json
import sys

import datasets
import soundfile
from conftest import make_audio

# Two local processes; --standalone lets torchrun pick a free port, so back-to-back launches
# (a killed run and its resume) never meet a port still held by the one before.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def rank_failures(stderr: str) -> list[str] | str:
    """Why a torchrun launch failed: every rank's `error:` line (torchrun's own report, at the
    end, hides them), or the end of stderr where no rank wrote one (a traceback)."""
    return [ln for ln in stderr.splitlines() if "error:" in ln] or stderr[-2000:]


TEXT = "Hello world, again!"
WORDS = [
    {"word": w, "start": 0.2 + 0.3 * k, "end": 0.45 + 0.3 * k}
    for k, w in enumerate(["Hello", "world,", "again!"])
]


def wav_bytes(seconds, seed, rate=16000):
    buf = io.BytesIO()
    soundfile.write(buf, make_audio(seconds * rate / 24000, seed).numpy(), rate, format="WAV")
    return buf.getvalue()


def rows(n, broken=(), text=TEXT):
    out = []
    for i in range(n):
        audio = b"not audio" * 20 if i in broken else wav_bytes(1.0 + 0.25 * (i % 4), seed=i)
        out.append(
            {
                "id": f"utt{i}",
                "audio": {"bytes": audio, "path": None},
                "text": text,
                "words": WORDS,
                "speaker_id": f"spk{i % 2}",
            }
        )
    return out


def save_to_disk(path, n=6, broken=(), **kwargs):
    datasets.Dataset.from_list(rows(n, broken, **kwargs)).save_to_disk(str(path))
    return str(path)


def jsonl_with_files(directory, n=3):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "clips").mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        (directory / "clips" / f"{i}.wav").write_bytes(wav_bytes(1.0, seed=20 + i))
        lines.append(json.dumps({"audio": f"clips/{i}.wav", "sentence": TEXT}))
    (directory / "data.jsonl").write_text("\n".join(lines) + "\n")
    return str(directory / "data.jsonl")
