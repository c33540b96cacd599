"""Model and dataset cards of the bundle, in the Hugging Face convention: a README.md with YAML
metadata in each model folder (its `model-index` holds the recipe's scores, so the hub would
show them) and in the bundled test split's folder (`dataset_info`).

    python -m dsmlab.train.cards            # rewrite the cards of the bundled data/ from its report

The recipe writes them when it bundles (`python -m dsmlab.train.recipe --bundle`); every figure
comes from recipe_report.json (and recipe.json, when the bundle has one), never typed by hand.
The metadata is built with huggingface_hub's own card classes, which the hub parses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets
from huggingface_hub import DatasetCard as HubDatasetCard
from huggingface_hub import DatasetCardData, EvalResult, ModelCard, ModelCardData

from ..audio import FRAME_RATE
from ..bundled import (
    MODELS_DIR,
    RECIPE_REPORT,
    RECIPE_SETTINGS,
    TEST_SPLIT_DIR,
    best_model,
    data_dir,
)
from ..checkpoint import CONFIG_NAME
from ..cli import ArgumentParser, run_cli
from ..errors import UsageError
from .corpus import SPLIT_NOTES, STORE_RATE
from .sentences import vocabulary

CARD_NAME = "README.md"  # the hub reads a repository's card from this file
TAGS = ["dsmlab", "delayed-streams-modeling", "streaming-asr", "moshi", "synthetic-speech"]
LICENSE = "mit"
DOCS = "https://github.com/kyutai-labs/delayed-streams-modeling"  # what DSM is
# recipe_report.json's figures in a card's model-index: key -> (metric type, name), percent
METRICS = {
    "corpus_wer": ("wer", "corpus WER (Whisper normalizer)"),
    "corpus_cer": ("cer", "corpus CER (Whisper normalizer)"),
    "lookahead_accuracy": ("accuracy", "accuracy on the words only right context decides"),
}


def eval_results(scores: dict, delay_s: float | None = None) -> list[EvalResult]:
    """The model-index entries of one model: corpus WER and CER (percent) on each split; a
    conditioned model's at `delay_s`, named in the metric's config."""
    results = []
    for split, found in scores.items():
        if not isinstance(found, dict):
            continue
        for key, (metric, label) in METRICS.items():
            if key in found:
                results.append(
                    EvalResult(
                        task_type="automatic-speech-recognition",
                        dataset_type=f"dsmlab/synth-{split}",
                        dataset_name=f"dsmlab synthetic speech, {split} split",
                        dataset_split=split,
                        metric_type=metric,
                        metric_name=label if delay_s is None else f"{label}, at {delay_s:g} s",
                        metric_config=None if delay_s is None else f"delay {delay_s:g} s",
                        metric_value=round(100 * found[key], 2),
                    )
                )
    return results


def model_card(name: str, report: dict, config: dict, recipe: dict | None = None) -> str:
    """A bundled model's card (`config`: its config.json): metadata, what it is, how it was
    made, results, limits."""
    scores = report["models"][name]
    delay = scores["delay_s"]
    words = len(vocabulary())
    best = best_model(report["models"])
    default = "It is the bundle's default model (lowest test WER). " if name == best else ""
    data = ModelCardData(
        language="en",
        license=LICENSE,
        library_name="moshi",
        pipeline_tag="automatic-speech-recognition",
        tags=TAGS,
        model_name=name,
        eval_results=eval_results(scores),
    )
    rows = [
        f"| {split} | {SPLIT_NOTES.get(split, '')} | {found.get('utterances', '')} | "
        f"{_percent(found, 'corpus_wer')} | {_percent(found, 'corpus_cer')} | "
        f"{_percent(found, 'lookahead_accuracy')} |"
        for split, found in scores.items()
        if isinstance(found, dict)
    ]
    body = f"""
# {name}: a small DSM speech-to-text model at a {delay:g} s delay

A Delayed Streams Modeling ([DSM]({DOCS})) speech-to-text model in the layout of Kyutai's STT
checkpoints, made by dsmlab's recipe to study delays offline: moshi's `LMModel` (dim
{config["dim"]}, {config["num_layers"]} layers, a context of {config["context"]} frames, \
{config["context"] / FRAME_RATE:g} s) reads a small Mimi's {config["n_q"]} codebooks of \
{config["card"]} and writes the text {round(delay * FRAME_RATE)} frames ({delay:g} s) after the \
audio, with semantic-VAD heads in Kyutai's layout (4 heads of 6 classes; head 2 class 0 is
P(end of turn)), fit on conversations with the LM tuned alongside so that a pause inside an
unfinished sentence is not an end of turn (`vad_report.json`). {default}It knows only its
grammar's {words} words.

```python
import dsmlab

model = dsmlab.load("{name}")
print(dsmlab.transcribe(model, "speech.wav").text)
```

`python -m dsmlab transcribe speech.wav --model {name}`, `python -m eval.wer --model {name}`;
moshi's loader and Kyutai's `scripts/stt_from_file_pytorch.py` load this folder unchanged.

## How it was made

```bash
python -m dsmlab.train.recipe --out runs/recipe --bundle
```

{_training(name, report, recipe)}

## Results

Corpus WER and CER (Whisper's normalizer), with 95% bootstrap intervals over utterances, and
the accuracy on the homophones only the next word decides (`eval/METRICS.md`, "Lookahead
words") where a split has them; the same figures are in `recipe_report.json` and in this
card's metadata.

| split | speech | utterances | WER [95% CI] | CER [95% CI] | lookahead-word accuracy |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

## Limits

- Synthetic speech and a {words}-word grammar: it cannot write a word outside that vocabulary, and
  on real speech it is no guide to what a released model does.
- Voices and synthesizers it never heard cost it most (the unseen-flite and festival rows).
- One delay: another delay is another model of the bundle (or a delay-conditioned model).
- Streams: `python -m eval.longform --model {name}` measures it on a stream of minutes;
  `dsmlab/train/README.md` has the bundle's figures.
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


def conditioned_card(name: str, report: dict, config: dict, recipe: dict | None = None) -> str:
    """The card of the model conditioned on every delay: its scores at each, beside the fixed
    models'."""
    at = report["conditioned"][name]
    data = ModelCardData(
        language="en",
        license=LICENSE,
        library_name="moshi",
        pipeline_tag="automatic-speech-recognition",
        tags=[*TAGS, "delay-conditioned"],
        model_name=name,
        eval_results=[r for row in at.values() for r in eval_results(row, row["delay_s"])],
    )
    fixed = {row["delay_s"]: row for row in report["models"].values()}
    rows = [
        f"| {row['delay_s']:g} s | {split} | {_percent(found, 'corpus_wer')} | "
        f"{_percent(fixed.get(row['delay_s'], {}).get(split, {}), 'corpus_wer')} | "
        f"{_percent(found, 'corpus_cer')} | {_percent(found, 'lookahead_accuracy')} |"
        for row in at.values()
        for split, found in row.items()
        if isinstance(found, dict)
    ]
    delays = ", ".join(f"{row['delay_s']:g}" for row in at.values())
    example = f"{name}@{next(iter(at.values()))['delay_s']:g}"
    body = f"""
# {name}: one small DSM speech-to-text model for every delay ({delays} s)

A Delayed Streams Modeling ([DSM]({DOCS})) speech-to-text model in the layout of Kyutai's STT
checkpoints, as the bundle's fixed-delay models (dim {config["dim"]}, {config["num_layers"]} \
layers, the same Mimi), trained once for the steps of one of them, each training stream at one
of the delays, told which by moshi's own conditioner (a lookup table named `delay`; Kyutai's
server passes a `conditioning_delay`). Pick the delay when loading; without one it runs at the
longest. Its semantic-VAD heads (and the LM tuned with them, on conversations) were fit at
that longest delay.

```python
import dsmlab

model = dsmlab.load("{example}")
print(dsmlab.transcribe(model, "speech.wav").text)
```

`python -m eval.sweep` runs it at every delay beside the fixed models. Kyutai's scripts pass
no condition: run it through dsmlab (`eval.bench --end-to-end` refuses it).

## How it was made

```bash
python -m dsmlab.train.recipe --out runs/recipe --bundle
```

{_training(name, report, recipe)}

## Results

Corpus WER (beside the fixed-delay model of the same delay) and CER, Whisper's normalizer,
95% bootstrap intervals over utterances; the accuracy on the homophones only the next word
decides where a split has them (`eval/METRICS.md`).

| delay | split | WER [95% CI] | fixed-delay model's WER | CER [95% CI] | lookahead-word accuracy |
| --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

## Limits

As the fixed-delay models': synthetic speech, a {len(vocabulary())}-word grammar, voices it \
never heard cost it most; it serves only the delays it was trained on.
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


def _percent(found: dict, key: str) -> str:
    if key not in found:
        return ""
    value = f"{100 * found[key]:.1f}%"
    interval = found.get(f"{key}_ci95")
    return f"{value} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]" if interval else value


def _training(name: str, report: dict, recipe: dict | None) -> str:
    tokenizer = report.get("audio_tokenizer", {})
    accuracy = ", ".join(
        f"{k.removeprefix('phone_accuracy_')} {100 * v:.1f}%"
        for k, v in tokenizer.items()
        if k.startswith("phone_accuracy_")
    )
    lines = ["Seeded and resumable; `dsmlab/train/README.md` describes each step and its studies."]
    if accuracy:
        lines.append(f"The audio tokenizer names the phone of a 20 ms frame: {accuracy}.")
    if recipe:
        settings = recipe.get("recipe", {})
        seconds = recipe.get("seconds", {})
        lm = seconds.get(f"lm {name.removeprefix('synth-')}")  # as the recipe names its steps
        shown = ", ".join(f"{k} {v}" for k, v in settings.items() if not isinstance(v, list))
        lines.append(f"Recipe settings: {shown}.")
        if lm:
            lines.append(f"This LM trained in {lm / 60:.1f} min (recipe.json has every step's).")
    return "\n".join(lines)


def dataset_card(split_dir: Path) -> str:
    """The bundled held-out splits' card: dataset_info, how they were made, the voices."""
    held_out = datasets.load_from_disk(str(split_dir))
    test = held_out["test"]
    rate = f"{STORE_RATE // 1000} kHz"
    info = test.info.copy()
    info.splits = datasets.SplitDict()
    for name, split in held_out.items():
        size = sum(f.stat().st_size for f in (split_dir / name).glob("*.arrow"))
        info.splits.add(datasets.SplitInfo(name=name, num_bytes=size, num_examples=len(split)))
    info.dataset_size = sum(s.num_bytes for s in info.splits.values())
    data = DatasetCardData(
        language=["en"],
        license=LICENSE,
        task_categories=["automatic-speech-recognition"],
        tags=TAGS,
        pretty_name="dsmlab synthetic test split",
    )
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    voices = sorted({v for split in held_out.values() for v in split["speaker_id"]})
    seconds = sum(w[-1]["end"] for w in test["words"] if w)
    words = len(vocabulary())
    splits = "\n".join(
        f"- `{name}`: {len(split)} sentences, {SPLIT_NOTES.get(name, '')}"
        for name, split in held_out.items()
    )
    body = f"""
# dsmlab synthetic test split

The offline default of dsmlab's evaluation (`--dataset synth`): English sentences of a
{words}-word grammar, each spoken whole by voices the bundled models never heard in training,
{len(voices)} voices in all, with the synthesizer's own word and phone times. The test split
holds about {seconds / 60:.1f} minutes of speech.

{splits}

```python
import datasets

test = datasets.load_from_disk("data/synth-test")["test"]
```

## Features

- `audio`: `{{bytes, path}}`, {rate} mono FLAC bytes (a plain struct: `datasets` 5 would need
  torchcodec to decode an `Audio` column; dsmlab decodes it itself).
- `text`: the sentence; `words` and `phones`: each with `start` and `end` in seconds.
- `speaker_id` (`synthesizer:voice`), `synthesizer`, `rate`, `pitch`, `augmentation` (the
  level it was played at; the held-out splits get no room, filter or noise).
- `lookahead` (when present): indices into `text`'s words of the homophones only the next
  word decides; `eval.wer` scores them apart (`--split lookahead` is all such sentences).
- `homophones` (when present): for each `lookahead` index, the spellings spoken like that word
  (its pair), so `eval.wer` can tell a wrong spelling from a word not heard.

## How it was made

```bash
python -m dsmlab.train.corpus --out runs/recipe/corpus   # (the recipe's first step)
```

Seeded: the same command gives this split byte for byte. Held-out sentences never occur in
training. `dsmlab/train/corpus.py` says how every split is drawn.

## Voices

{", ".join(f"`{v}`" for v in voices)}
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


def write_cards(data: Path) -> list[Path]:
    """(Re)write the card of every bundled model in `data` from its report, and the test
    split's card; the paths written."""
    report_path = data / MODELS_DIR / RECIPE_REPORT
    if not report_path.is_file():
        raise UsageError(f"{report_path} is missing: run the recipe with --bundle first")
    report = json.loads(report_path.read_text())
    recipe_path = data / MODELS_DIR / RECIPE_SETTINGS
    recipe = json.loads(recipe_path.read_text()) if recipe_path.is_file() else None
    written = []
    kinds = [(model_card, report["models"]), (conditioned_card, report.get("conditioned", {}))]
    for card, names in kinds:
        for name in names:
            folder = data / MODELS_DIR / name
            config = json.loads((folder / CONFIG_NAME).read_text())
            ModelCard(card(name, report, config, recipe)).save(folder / CARD_NAME)
            written.append(folder / CARD_NAME)
    if (data / TEST_SPLIT_DIR).is_dir():
        path = data / TEST_SPLIT_DIR / CARD_NAME
        HubDatasetCard(dataset_card(data / TEST_SPLIT_DIR)).save(path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dsmlab.train.cards", description=__doc__)
    parser.add_argument("--data", type=Path, help="a bundle folder (default: the bundled data)")
    args = parser.parse_args(argv)

    def body() -> int:
        for path in write_cards(args.data or data_dir() or Path("data")):
            print(path)
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
