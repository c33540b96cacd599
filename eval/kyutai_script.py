"""Kyutai's evaluation script re-created, the baseline of `eval.bench --end-to-end`.

delayed-streams-modeling's `scripts/stt_evaluate_on_dataset.py`, written out with moshi, julius,
jiwer and Whisper's normalizer alone (no dsmlab code, so the baseline does not move with the
code it is compared to): the checkpoint loaded by moshi's `CheckpointInfo` (local files as its
--moshi-weight/--mimi-weight/--tokenizer/--config-path), the rows in dataset order in static
batches of --batch-size, each file resampled to 24 kHz and padded with the silence prefix
before and delay + 0.5 s after, each batch padded to its longest file, then one Mimi encode
and one LMGen step per 80 ms frame, greedy; every text token above padding decoded. WER: the
mean of per-utterance WERs and the corpus WER, Whisper's English normalizer.

    python -m eval.kyutai_script --model-dir data/models/synth-d16 --dataset data/synth-test \
        --out transcripts.json
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import datasets
import jiwer
import julius
import soundfile
import torch
from moshi.models import LMGen
from moshi.models.loaders import CheckpointInfo
from whisper_normalizer.english import EnglishTextNormalizer


def load(directory: Path):
    info = CheckpointInfo.from_hf_repo(
        None,
        moshi_weights=str(directory / "model.safetensors"),
        mimi_weights=str(directory / "mimi.safetensors"),
        tokenizer=str(directory / "tokenizer.model"),
        config_path=str(directory / "config.json"),
    )
    mimi = info.get_mimi(device="cpu")
    return info, mimi, info.get_text_tokenizer(), info.get_moshi(device="cpu", dtype=torch.float32)


def padded_batch(audios, before_s: float, after_s: float, rate: int) -> torch.Tensor:
    """The script's get_padded_batch: resample, pad each file, then pad all to the longest."""
    batch = []
    for audio, sr in audios:
        audio = julius.resample_frac(audio, int(sr), int(rate))
        audio = torch.nn.functional.pad(audio, (int(before_s * rate), int(after_s * rate)))
        batch.append(audio[None])
    longest = max(a.shape[-1] for a in batch)
    return torch.stack([torch.nn.functional.pad(a, (0, longest - a.shape[-1])) for a in batch])


@torch.no_grad()
def run_batch(info, mimi, tokenizer, lm, audios) -> list[str]:
    prefix = info.stt_config.get("audio_silence_prefix_seconds", 1.0)
    delay = info.stt_config.get("audio_delay_seconds", 5.0)
    padding_id = info.raw_config.get("text_padding_token_id", 3)
    batch = padded_batch(audios, prefix, delay + 0.5, mimi.sample_rate)
    lm_gen = LMGen(lm, temp=0, temp_text=0, use_sampling=False)
    tokens = []
    with mimi.streaming(len(audios)), lm_gen.streaming(len(audios)):
        for offset in range(0, batch.shape[-1], mimi.frame_size):
            chunk = batch[:, :, offset : offset + mimi.frame_size]
            if chunk.shape[-1] < mimi.frame_size:  # the script's last, partial frame
                chunk = torch.nn.functional.pad(chunk, (0, mimi.frame_size - chunk.shape[-1]))
            out = lm_gen.step(mimi.encode(chunk))
            if out is not None:
                tokens.append(out[:, 0])
    tokens = torch.cat(tokens, dim=-1).cpu()
    return [tokenizer.decode(row[row > padding_id].tolist()) for row in tokens]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.kyutai_script", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True, help="a save_to_disk directory")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, required=True, help="transcripts and WER (JSON)")
    args = parser.parse_args(argv)
    info, mimi, tokenizer, lm = load(args.model_dir)
    rows = datasets.load_from_disk(str(args.dataset))[args.split]
    rows = rows.cast_column("audio", datasets.Audio(decode=False))
    normalizer = EnglishTextNormalizer()
    hypotheses, references, audio_s, inference_s = [], [], 0.0, 0.0
    for first in range(0, len(rows), args.batch_size):
        audios = []
        for row in rows.select(range(first, min(first + args.batch_size, len(rows)))):
            data, sr = soundfile.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
            audios.append((torch.from_numpy(data), sr))
            audio_s += len(data) / sr
            references.append(row["text"])
        start = time.perf_counter()
        hypotheses += run_batch(info, mimi, tokenizer, lm, audios)
        inference_s += time.perf_counter() - start
    refs = [normalizer(r) for r in references]
    hyps = [normalizer(h) for h in hypotheses]
    per_utterance = [jiwer.wer(r, h) for r, h in zip(refs, hyps, strict=True) if r.strip()]
    kept = [(r, h) for r, h in zip(refs, hyps, strict=True) if r.strip()]
    args.out.write_text(
        json.dumps(
            {
                "hypotheses": hypotheses,
                "wer": sum(per_utterance) / len(per_utterance),
                "corpus_wer": jiwer.wer([r for r, _ in kept], [h for _, h in kept]),
                "rtf": audio_s / inference_s,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
