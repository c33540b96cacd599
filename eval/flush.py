"""The flush trick, measured: what it saves and what skipping the trailing silence loses.

After the speech ends, a DSM model still owes the words of its last `delay` seconds. Each
utterance is run three ways:

- (a) real time: silent frames fed one per 80 ms until the last word is out (stream time);
- (b) flush: the same silent frames pushed at once (`Stepper.flush`): the same inputs, so the
  same words, out after the flush's wall time on this device (batch 1, and N streams flushed
  together: N is the run's batch size, at most MAX_FLUSH_BATCH);
- (c) no trailing silence: the stream stops with the audio, and the words still owed are lost.

For each: the words (WER over the sampled utterances), and the time from the end of the
audio to the final transcript: stream seconds for (a), measured wall seconds for (b), 0 for (c).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

import dsmlab
from dsmlab import intervals

from . import metrics

FLUSHES = ("flush", "flush_batch")  # batch 1, and N streams flushed together
# N: the run's batch size, at most this: each study streams N copies of the utterance
MAX_FLUSH_BATCH = 8


def study_utterance(model: dsmlab.DSMModel, audio: np.ndarray, batch_size: int, normalize) -> dict:
    """The three ways for one utterance (24 kHz mono): words and times of each."""
    pcm = torch.cat(
        [torch.zeros(round(model.prefix_s * model.sample_rate)), torch.from_numpy(audio)]
    )
    pcm = torch.nn.functional.pad(pcm, (0, -pcm.numel() % model.frame_size))
    frames = pcm.view(-1, 1, model.frame_size)
    audio_s = len(audio) / model.sample_rate
    silence = torch.zeros(1, 1, model.frame_size)
    flushed = dsmlab.flush_frames(model.delay_s, model.frame_rate)
    with dsmlab.Stepper(model, 1) as stepper:
        tokens = [int(stepper.step_tensors(f[None])[0][0]) for f in frames]
        spoken = len(tokens)
        tokens += [int(stepper.step_tensors(silence)[0][0]) for _ in range(flushed)]
    real_time = dsmlab.to_transcript(model, np.array(tokens), None, audio_s)
    cut = dsmlab.to_transcript(model, np.array(tokens[:spoken]), None, audio_s)
    texts = {"real_time": real_time.text, "no_silence": cut.text}
    walls = {}
    for way, size in (("flush", 1), ("flush_batch", batch_size)):
        with dsmlab.Stepper(model, size) as stepper:
            for f in frames:
                stepper.step_tensors(f[None].expand(size, 1, -1))
            result = stepper.flush(range(size))
        found = dsmlab.to_transcript(
            model, np.array(tokens[:spoken] + result.tokens[0].tolist()), None, audio_s
        )
        texts[way] = found.text
        last = result.last_text(0)
        walls[f"{way}_wall_s"] = 0.0 if last is None else last[1]
    return {
        "texts": texts,
        "normalized": {k: normalize(v) for k, v in texts.items()},
        "real_time_final_s": metrics.finalization_s(
            [w.to_dict() for w in real_time.words], audio_s
        ),
        **walls,
    }


def flush_summary(studies: Sequence[dict], references: Sequence[str], batch_size: int) -> dict:
    """Corpus WER of each way with 95% intervals, whether (a) and (b) gave the same words, and
    the median time to the final transcript after the audio ends."""
    if not studies:
        return {}
    summary: dict = {"flush_utterances": len(studies), "flush_batch_size": batch_size}
    for way in studies[0]["texts"]:
        counts = [
            dsmlab.utterance_errors(ref, s["normalized"][way])
            for ref, s in zip(references, studies, strict=True)
        ]
        found = intervals.ratio(
            [c["word_errors"] for c in counts], [c["reference_words"] for c in counts]
        )
        if found is not None:
            summary[f"{way}_corpus_wer"] = round(found[0], 6)
            summary[f"{way}_corpus_wer_ci95"] = [round(found[1], 6), round(found[2], 6)]
    summary["flush_same_words"] = all(
        s["texts"]["real_time"] == s["texts"][way] for s in studies for way in FLUSHES
    )
    finals = {
        "real_time_final_s": [s["real_time_final_s"] for s in studies],
        **{k: [s[k] for s in studies] for k in studies[0] if k.endswith("_wall_s")},
    }
    for name, values in finals.items():
        values = [v for v in values if v is not None]
        if values:
            summary[f"{name}_median"] = round(float(np.median(values)), 4)
            summary[f"{name}_p90"] = round(float(np.percentile(values, 90)), 4)
    return summary
