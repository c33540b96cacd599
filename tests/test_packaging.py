"""A wheel (`pip install .`, not editable) keeps the offline default: the bundled models and
test split travel inside it, and `python -m eval.wer` runs from any directory."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import dsmlab
from dsmlab import bundled

ROOT = Path(__file__).resolve().parent.parent


def test_data_dir_follows_the_documented_rule(tmp_path, monkeypatch):
    monkeypatch.delenv(bundled.DATA_ENV, raising=False)
    assert bundled.data_dir() == ROOT / "data"  # a clone: data/ beside the package
    (tmp_path / "models").mkdir()
    monkeypatch.setenv(bundled.DATA_ENV, str(tmp_path))
    assert bundled.data_dir() == tmp_path and bundled.bundled_models() == {}
    with pytest.raises(dsmlab.DSMLabError, match="synth-test.*is not installed.*DSMLAB_DATA"):
        bundled.test_split()
    monkeypatch.setenv(bundled.DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(dsmlab.DSMLabError, match="DSMLAB_DATA=.*nowhere is not a directory"):
        bundled.data_dir()


def test_a_sweep_runs_a_bundled_conditioned_model_at_each_delay(tmp_path, monkeypatch):
    from dsmlab.conditioning import delay_conditioner

    for name, delay, extra in (
        ("m-dc", 0.32, delay_conditioner([0.16, 0.32])),
        ("m-d2", 0.16, {}),
        ("m-d4", 0.32, {}),
    ):
        (tmp_path / "models" / name).mkdir(parents=True)
        config = {"stt_config": {"audio_delay_seconds": delay}} | extra
        (tmp_path / "models" / name / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv(bundled.DATA_ENV, str(tmp_path))
    assert bundled.bundled_runs() == ["m-d2", "m-d4", "m-dc@0.16", "m-dc@0.32"]
    scores = {"test": {"corpus_wer": 0.2}}
    (tmp_path / "models" / bundled.RECIPE_REPORT).write_text(
        json.dumps({"models": {"m-d2": scores, "m-d4": scores}})  # the conditioned: apart
    )
    assert bundled.default_model() == "m-d2"  # of a tie, the shorter delay; never m-dc


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_runs_the_offline_default(tmp_path):
    # setuptools builds inside the source tree (build/): build from a copy of the project
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns(".venv", ".git", "runs", "build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=ignore)
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(wheels), str(source)], check=True, capture_output=True)
    (wheel,) = wheels.glob("dsmlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dsmlab/data/synth-test/dataset_dict.json" in names
    assert "dsmlab/normalizers/oalb_tables.json" in names
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*install, str(wheel)], check=True, capture_output=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != bundled.DATA_ENV}
    env |= {"PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "eval.wer", "--max-samples", "2"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (results_path,) = (elsewhere / "runs").glob("wer-*/results.json")
    results = json.loads(results_path.read_text())
    installed = str(site / "dsmlab" / "data")
    assert results["data"]["dataset"].startswith(installed)
    assert results["model"]["source"].startswith(installed)
    assert results["metrics"]["utterances"] == 2
