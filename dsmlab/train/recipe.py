"""The bundled models' whole recipe, one resumable command: corpus -> audio tokenizer -> an LM at
each delay, and one conditioned on every delay -> VAD heads (the LM tuned with them) -> their
scores -> (with --bundle) data/.

    python -m dsmlab.train.recipe --out runs/recipe             # about 3 hours on 2 CPU cores
    python -m dsmlab.train.recipe --out runs/recipe --bundle    # then copy into data/

Each step leaves its result in --out and is skipped when that result is there; a step killed
half-way resumes from its last save (the corpus by chunks, the trainings every 100 steps).
The LMs train --jobs at a time (default 2), each in a process of its own on its share of the
cores, which gives the same weights as training them in turn with that many threads; the
longest start first, and the last one running trains its LM on every core (`workers`).
recipe.json keeps each step's wall time and recipe_report.json the scores: WER per model on
each held-out split (test: espeak-ng voices training never used; unseen-flite; festival, a
synthesizer training never used) and on validation (training voices); the conditioned model
(`synth-dc`, trained for the steps of one fixed-delay LM) is scored at every delay.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import sentencepiece

from .. import intervals
from ..audio import FRAME_RATE, SAMPLE_RATE
from ..bundled import MODELS_DIR, RECIPE_REPORT, RECIPE_SETTINGS, TEST_SPLIT_DIR, data_dir
from ..checkpoint import CONFIG_NAME
from ..cli import ArgumentParser, non_negative_int, positive_int, probability, run_cli
from ..conditioning import delay_label
from ..errors import UsageError
from ..loading import load
from ..normalizers import get_normalizer
from ..scoring import lookahead_counts, utterance_errors
from ..transcribe import transcribe_batch
from . import audio_tokenizer, cards, codes, corpus, lm, vad_heads
from .audio_tokenizer import row_pcm, split_rows
from .workers import SPAWN, take_fixed_share, take_free_cores, tied_to_this_process, unfinished_jobs

CONDITIONED = "synth-dc"  # the one LM conditioned on every delay of the recipe
SCORED_SPLITS = ("test", "unseen-flite", "festival", "lookahead", "hesitation", "validation")
BUNDLED_SPLITS = ("test", "lookahead", "hesitation")  # held-out espeak-ng voices: offline data
TRAINING_FILES = ("training.pt",)  # left out of a bundled model
NOT_IN_RESULTS = ("workers", "jobs")  # settings that change how fast, not what comes out
# Recipe fields given as one number on the command line (the held-out split sizes are not).
CLI_SETTINGS = ("train", "tokenizer_steps", "tokenizer_crop", "phone_lag", "lm_steps")
CLI_SETTINGS += ("stream_frames", "vad_tune_steps", "seed")
CLI_SETTINGS += NOT_IN_RESULTS


@dataclass(frozen=True)
class Recipe:
    delays: tuple[int, ...] = (2, 4, 8, 16)  # frames of 80 ms
    train: int = corpus.SIZES["train"]
    validation: int = corpus.SIZES["validation"]
    test: int = corpus.SIZES["test"]
    unseen_flite: int = corpus.SIZES["unseen-flite"]
    festival: int = corpus.SIZES["festival"]
    lookahead: int = corpus.SIZES["lookahead"]
    hesitation: int = corpus.SIZES["hesitation"]
    # The bundle's shares of the train split's sentences (the held-out splits keep the corpus's
    # LOOKAHEAD_SHARE): lookahead sentences, and sentences with a filler (uh, um).
    lookahead_share: float = 0.5
    hesitation_share: float = 0.2
    tokenizer_steps: int = audio_tokenizer.STEPS
    tokenizer_crop: int = audio_tokenizer.CROP_FRAMES  # frames per training cut; 0: whole
    phone_lag: int = audio_tokenizer.PHONE_LAG  # frames the tokenizer's phone labels trail
    lm_steps: int = lm.STEPS
    stream_frames: int = lm.STREAM_FRAMES  # frames of each training stream; 0: one utterance
    vad_tune_steps: int = vad_heads.TUNE_STEPS  # LM steps tuned with the VAD head; 0: frozen
    seed: int = 0
    workers: int = 2  # processes rendering the corpus
    jobs: int = 2  # LMs trained at once, each on its share of the cores


def run(out: Path, recipe: Recipe) -> dict:
    """Every step not done yet; returns the scores (also in recipe_report.json)."""
    out.mkdir(parents=True, exist_ok=True)
    earlier = _load(out / RECIPE_SETTINGS)
    if _check_same_recipe(out, earlier.get("recipe", {}), json.loads(json.dumps(asdict(recipe)))):
        (out / RECIPE_REPORT).unlink(missing_ok=True)  # scored before the new delays' models
    timings = earlier.get("seconds", {})

    def record(seconds: dict[str, float]) -> None:
        for name, spent in seconds.items():
            timings[name] = round(spent + timings.get(name, 0), 1)
        _dump(out / RECIPE_SETTINGS, {"recipe": asdict(recipe), "seconds": timings})

    sizes = {
        "train": recipe.train,
        "validation": recipe.validation,
        "test": recipe.test,
        "unseen-flite": recipe.unseen_flite,
        "festival": recipe.festival,
        "lookahead": recipe.lookahead,
        "hesitation": recipe.hesitation,
    }
    corpus_dir, tokenizer_dir = out / "corpus", out / "tokenizer"
    record(
        _timed(
            "corpus",
            corpus_dir / "dataset_dict.json",
            lambda: corpus.generate(
                corpus_dir,
                sizes,
                recipe.seed,
                recipe.workers,
                recipe.lookahead_share,
                recipe.hesitation_share,
            ),
        )
    )
    record(
        _timed(
            "audio tokenizer",
            tokenizer_dir / "mimi.safetensors",
            lambda: audio_tokenizer.build(
                corpus_dir,
                tokenizer_dir,
                recipe.tokenizer_steps,
                seed=recipe.seed,
                lag=recipe.phone_lag,
                crop=recipe.tokenizer_crop,
            ),
        )
    )
    models = _models(recipe)
    if not all((_model_dir(out, d) / CONFIG_NAME).exists() for d in models):
        start = time.perf_counter()
        _encode_training_codes(corpus_dir, tokenizer_dir, recipe.seed)
        record({"training codes": time.perf_counter() - start})
    unfinished = [d for d in models if not (_model_dir(out, d) / vad_heads.REPORT_NAME).exists()]
    if recipe.jobs == 1 or len(unfinished) <= 1:
        for delay in unfinished:
            record(_one_delay(out, recipe, delay))
    else:
        # Small models use a second core poorly: N trainings of one thread each finish sooner
        # than N in turn on all the cores. The longest start first, and the last one running
        # takes every core (`workers.take_free_cores`).
        left = unfinished_jobs(len(unfinished))
        pool_args = tied_to_this_process(left, recipe.jobs, os.cpu_count())
        with ProcessPoolExecutor(recipe.jobs, SPAWN, **pool_args) as pool:
            runs = [pool.submit(_one_delay, out, recipe, d) for d in _longest_first(unfinished)]
            for finished in as_completed(runs):
                with left.get_lock():
                    left.value -= 1
                record(finished.result())
    report_path = out / RECIPE_REPORT
    record(_timed("scores", report_path, lambda: _dump(report_path, scores(out, recipe))))
    return _load(report_path)


def _check_same_recipe(out: Path, earlier: dict, now: dict) -> bool:
    """A step is skipped when its result is there, so a rerun with other settings would mix
    their results with the earlier ones' under the new settings' name: refuse it. A setting
    the earlier recipe.json does not record (it predates the setting) counts as changed: what
    it was then cannot be known. More delays are no change to what is there (each fixed-delay
    LM depends on its delay alone) while the conditioned model, made of them all, is not yet
    trained: returns whether the delays grew so."""
    if not earlier:
        return False
    grown = (
        earlier.get("delays") != now["delays"]
        and set(earlier.get("delays", [None])) <= set(now["delays"])
        and not (_model_dir(out, tuple(now["delays"])) / CONFIG_NAME).exists()
    )
    changed = [
        f"{k}: {earlier.get(k, 'not recorded')} -> {v}"
        for k, v in now.items()
        if k not in NOT_IN_RESULTS
        and (k not in earlier or earlier[k] != v)
        and not (k == "delays" and grown)
    ]
    if changed:
        raise UsageError(
            f"{out} holds a recipe made with other settings ({', '.join(changed)}): "
            "use another --out, or the earlier settings"
        )
    return grown


def _models(recipe: Recipe) -> list[int | tuple[int, ...]]:
    """Each fixed delay (frames), then every delay at once: the conditioned model."""
    return [*recipe.delays, *([tuple(recipe.delays)] if len(recipe.delays) > 1 else [])]


def _longest_first(models: list[int | tuple[int, ...]]) -> list[int | tuple[int, ...]]:
    """The conditioned model, then the longer delays: the order their trainings took longest
    in (this bundle's recipe.json: dc 40 min, d16 37, d8 and d2 33), so that a short one is
    the last to start and the cores idle least."""
    return sorted(models, key=lambda d: (1, 0) if isinstance(d, tuple) else (0, d), reverse=True)


def _one_delay(out: Path, recipe: Recipe, delay: int | tuple[int, ...]) -> dict:
    """The LM of one delay (a tuple: conditioned on each) and its VAD heads; their wall times
    by name."""
    take_free_cores()
    corpus_dir, tokenizer_dir = out / "corpus", out / "tokenizer"
    model_dir = _model_dir(out, delay)
    short = model_dir.name.removeprefix("synth-")
    seconds = _timed(
        f"lm {short}",
        model_dir / CONFIG_NAME,
        lambda: lm.train(
            corpus_dir,
            tokenizer_dir,
            model_dir,
            list(delay) if isinstance(delay, tuple) else delay,
            steps=recipe.lm_steps,
            seed=recipe.seed,
            stream_frames=recipe.stream_frames,
        ),
    )
    take_fixed_share()  # the VAD round's weights depend on the thread count: the same share
    seconds |= _timed(
        f"vad heads {short}",
        model_dir / vad_heads.REPORT_NAME,
        lambda: vad_heads.add_vad_heads(
            model_dir, corpus_dir, seed=recipe.seed, tune_steps=recipe.vad_tune_steps
        ),
    )
    return seconds


def _model_dir(out: Path, delay: int | tuple[int, ...]) -> Path:
    return out / "models" / (CONDITIONED if isinstance(delay, tuple) else f"synth-d{delay}")


def _encode_training_codes(corpus_dir: Path, tokenizer_dir: Path, seed: int) -> None:
    """Cache the training split's codes once, before the LMs that share them train at once."""
    mimi, _ = audio_tokenizer.load_tokenizer(tokenizer_dir)
    words = sentencepiece.SentencePieceProcessor(model_proto=codes.word_tokenizer(seed))
    codes.encode_split(mimi, corpus_dir, "train", tokenizer_dir, words)


def _timed(name: str, done: Path, work: Callable[[], object]) -> dict[str, float]:
    """Run `work` unless `done` is there (a step finished before); its wall time by name."""
    if done.exists():
        return {}
    start = time.perf_counter()
    work()
    return {name: time.perf_counter() - start}


def scores(out: Path, recipe: Recipe) -> dict:
    """Corpus WER and CER of every model on every held-out split (Whisper's normalizer), each
    with its 95% bootstrap interval over utterances; the conditioned model's at each delay."""
    rows = {split: split_rows(out / "corpus", split) for split in SCORED_SPLITS}

    def row(spec: str, delay: int) -> tuple[str, dict]:
        model = load(spec, device="cpu")
        found = {split: split_scores(model, rows[split]) for split in SCORED_SPLITS}
        return model.name, {"delay_s": delay / FRAME_RATE, **found}

    report = {"models": dict(row(str(_model_dir(out, d)), d) for d in recipe.delays)}
    if len(recipe.delays) > 1:
        conditioned = str(_model_dir(out, tuple(recipe.delays)))
        at = [row(f"{conditioned}@{delay_label(d / FRAME_RATE)}", d) for d in recipe.delays]
        report["conditioned"] = {CONDITIONED: dict(at)}
    return report | {"audio_tokenizer": _load(out / "tokenizer" / "report.json")}


def split_scores(model, rows: list[dict]) -> dict:
    """corpus_wer, corpus_cer and their *_ci95 ([low, high]) of `model` on corpus rows, and
    lookahead_accuracy (of the words only right context decides) where rows mark them; rounded
    to 4 decimals, with the number of utterances scored."""
    normalize = get_normalizer("whisper", "en")
    transcripts = transcribe_batch(
        model, [row_pcm(r) for r in rows], [SAMPLE_RATE] * len(rows), batch_size=16
    )
    scored = [(r, t.text) for r, t in zip(rows, transcripts, strict=True) if normalize(r["text"])]
    counts = [utterance_errors(normalize(r["text"]), normalize(text)) for r, text in scored]
    found = {"utterances": len(counts)}
    found |= _rate("corpus_wer", counts, "word_errors", "reference_words")
    found |= _rate("corpus_cer", counts, "char_errors", "reference_chars")
    marked = [
        lookahead_counts(r["text"], r["lookahead"], text, normalize)
        for r, text in scored
        if r.get("lookahead")
    ]
    if marked:
        found |= _rate("lookahead_accuracy", marked, "lookahead_hits", "lookahead_words")
    return found


def _rate(name: str, counts: list[dict], num: str, den: str) -> dict:
    """name and name_ci95 (95% bootstrap over utterances), rounded to 4 decimals."""
    value, low, high = intervals.ratio([c[num] for c in counts], [c[den] for c in counts])
    return {name: round(value, 4), f"{name}_ci95": [round(low, 4), round(high, 4)]}


def bundle(out: Path, data: Path) -> None:
    """Copy the trained models (without their training state), their scores, the recipe's
    settings and times, and the held-out splits of BUNDLED_SPLITS into `data` (data/ of the
    repository): what `eval.wer` runs offline, and its default; then write their cards."""
    import datasets

    for model_dir in sorted((out / "models").iterdir()):
        target = data / MODELS_DIR / model_dir.name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model_dir, target, ignore=shutil.ignore_patterns(*TRAINING_FILES))
    shutil.copy(out / RECIPE_REPORT, data / MODELS_DIR / RECIPE_REPORT)
    shutil.copy(out / RECIPE_SETTINGS, data / MODELS_DIR / RECIPE_SETTINGS)
    held_out = datasets.load_from_disk(str(out / "corpus"))
    target = data / TEST_SPLIT_DIR
    if target.exists():
        shutil.rmtree(target)
    splits = {s: held_out[s] for s in BUNDLED_SPLITS if s in held_out}
    datasets.DatasetDict(splits).save_to_disk(str(target))
    cards.write_cards(data)


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _dump(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dsmlab.train.recipe", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/recipe"))
    defaults = Recipe()
    for name in CLI_SETTINGS:
        zero_allowed = ("seed", "phone_lag", "tokenizer_crop", "stream_frames", "vad_tune_steps")
        kind = non_negative_int if name in zero_allowed else positive_int
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name)
        )
    parser.add_argument(
        "--delays", type=positive_int, nargs="+", default=list(defaults.delays), help="frames"
    )
    parser.add_argument(
        "--lookahead-share",
        type=probability,
        default=defaults.lookahead_share,
        help=f"of the train split's sentences (default {defaults.lookahead_share:g}; the "
        f"held-out splits keep the corpus's {corpus.LOOKAHEAD_SHARE:g})",
    )
    parser.add_argument(
        "--hesitation-share",
        type=probability,
        default=defaults.hesitation_share,
        help="of the train split's sentences, with a filler where the sentence cannot end "
        f"(default {defaults.hesitation_share:g}; the hesitation probe split is the same either "
        "way)",
    )
    parser.add_argument("--bundle", action="store_true", help="then copy the results into data/")
    args = parser.parse_args(argv)

    def body() -> int:
        settings = {name: getattr(args, name) for name in CLI_SETTINGS}
        shares = {name: getattr(args, name) for name in ("lookahead_share", "hesitation_share")}
        recipe = Recipe(delays=tuple(args.delays), **shares, **settings)
        print(json.dumps(run(args.out, recipe), indent=2))
        if args.bundle:
            bundle(args.out, data_dir() or Path("data"))
            print(f"bundled into {data_dir()}")
        return 0

    return run_cli(body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
