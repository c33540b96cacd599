"""Where the bundled models and test split live: the offline default.

One rule, tried in order, the first folder that exists wins:
1. `$DSMLAB_DATA`, when set (it must then exist);
2. `dsmlab/data/` inside the installed package: a wheel (`pip install .`) ships the
   repository's `data/` there (see `[tool.setuptools]` in pyproject.toml);
3. `data/` at the repository root, beside the package: a clone or an editable install.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .conditioning import conditioned_delays, delay_label
from .errors import DSMLabError, UsageError

DATA_ENV = "DSMLAB_DATA"
MODELS_DIR = "models"  # one checkpoint folder per bundled model, named by its short name
TEST_SPLIT_DIR = "synth-test"  # a datasets.save_to_disk folder: the bundled test split
RECIPE_REPORT = "recipe_report.json"  # beside the models: the recipe's scores on each split
RECIPE_SETTINGS = "recipe.json"  # in a recipe's folder and beside the models: settings, times
_PACKAGE = Path(__file__).resolve().parent


def data_dir() -> Path | None:
    """The bundled data folder by the rule above; None when there is none."""
    configured = os.environ.get(DATA_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_dir():
            raise UsageError(f"{DATA_ENV}={configured} is not a directory; unset it or fix it")
        return path
    for candidate in (_PACKAGE / "data", _PACKAGE.parent / "data"):
        if (candidate / MODELS_DIR).is_dir() or (candidate / TEST_SPLIT_DIR).is_dir():
            return candidate
    return None


def bundled_models() -> dict[str, Path]:
    """Short name -> folder of every bundled checkpoint, shortest delay first."""
    root = data_dir()
    if root is None or not (root / MODELS_DIR).is_dir():
        return {}
    found = [d for d in (root / MODELS_DIR).iterdir() if (d / "config.json").is_file()]

    def delay(folder: Path) -> float:
        try:
            stt = json.loads((folder / "config.json").read_text())["stt_config"]
            return float(stt["audio_delay_seconds"])
        except (ValueError, KeyError, TypeError):
            return float("inf")  # listed last; loading it gives the precise error

    return {d.name: d for d in sorted(found, key=lambda d: (delay(d), d.name))}


def bundled_runs() -> list[str]:
    """Every bundled model as a sweep runs it: a fixed-delay model once, a delay-conditioned
    one at each delay it serves (`name@seconds`)."""
    runs = []
    for name, folder in bundled_models().items():
        try:
            delays = conditioned_delays(json.loads((folder / "config.json").read_text()))
        except (OSError, ValueError):
            delays = []  # loading it gives the precise error
        runs += [f"{name}@{delay_label(d)}" for d in delays] or [name]
    return runs


def default_model() -> str | None:
    """The bundled model the scripts run when none is named: the one with the lowest WER on the
    bundled test split in the recipe's report; without a report, the longest delay."""
    models = bundled_models()
    if not models:
        return None
    report = data_dir() / MODELS_DIR / RECIPE_REPORT
    try:
        scores = json.loads(report.read_text())["models"]  # the fixed-delay models
        return best_model({name: scores[name] for name in models if name in scores})
    except (OSError, ValueError, KeyError, TypeError):
        return list(models)[-1]


def best_model(scores: dict[str, dict]) -> str:
    """The model of a recipe report's `models` with the lowest test WER (of a tie, the first:
    the shorter delay)."""
    return min(scores, key=lambda name: float(scores[name]["test"]["corpus_wer"]))


def test_split() -> Path:
    """The bundled test split's folder, or a one-line error saying how to get one."""
    root = data_dir()
    if root is None or not (root / TEST_SPLIT_DIR).is_dir():
        raise DSMLabError(
            f"the bundled test split ({TEST_SPLIT_DIR}) is not installed: install dsmlab from a "
            f"clone or its wheel, or set {DATA_ENV} to a folder holding {TEST_SPLIT_DIR}/"
        )
    return root / TEST_SPLIT_DIR
