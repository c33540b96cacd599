"""The bundle's model and dataset cards: hub-parseable metadata whose figures are the recipe's."""

import json
import shutil

import datasets
import pytest
from huggingface_hub import DatasetCard, ModelCard

import dsmlab
from dsmlab.bundled import MODELS_DIR, RECIPE_REPORT, RECIPE_SETTINGS, TEST_SPLIT_DIR, data_dir
from dsmlab.train import cards, recipe

DATA = data_dir()
REPORT = json.loads((DATA / MODELS_DIR / RECIPE_REPORT).read_text())


@pytest.mark.parametrize("name", list(dsmlab.bundled_models()))
def test_every_model_card_parses_and_its_model_index_is_the_recipe_report(name):
    card = ModelCard.load(DATA / MODELS_DIR / name / cards.CARD_NAME)
    assert card.data.pipeline_tag == "automatic-speech-recognition"
    assert card.data.license and card.data.language == "en"
    assert card.data.model_name == name
    found = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    if name in REPORT.get("conditioned", {}):  # one model, scored at each delay
        at = REPORT["conditioned"][name]
        found = {(r.metric_config, r.dataset_split, r.metric_type): r.metric_value
                 for r in card.data.eval_results}  # fmt: skip
        expected = {
            (f"delay {row['delay_s']:g} s", split, metric): round(100 * found_[key], 2)
            for row in at.values()
            for split, found_ in row.items()
            if isinstance(found_, dict)
            for key, (metric, _) in cards.METRICS.items()
            if key in found_
        }
        assert found == expected and len(at) >= 4
        return
    scores = REPORT["models"][name]
    expected = {
        (split, metric): round(100 * scores[split][key], 2)
        for split in scores
        if isinstance(scores[split], dict)
        for key, (metric, _) in cards.METRICS.items()
        if key in scores[split]
    }
    assert found == expected and ("test", "wer") in found and ("lookahead", "accuracy") in found
    low, high = scores["test"]["corpus_wer_ci95"]
    assert f"{100 * low:.1f}, {100 * high:.1f}]" in card.text  # the table carries the interval


def test_the_dataset_card_describes_the_bundled_split():
    card = DatasetCard.load(DATA / TEST_SPLIT_DIR / cards.CARD_NAME)
    info = card.data.to_dict()["dataset_info"]
    held_out = datasets.load_from_disk(str(DATA / TEST_SPLIT_DIR))
    assert [s["name"] for s in info["splits"]] == list(held_out) == list(recipe.BUNDLED_SPLITS)
    assert [s["num_examples"] for s in info["splits"]] == [len(s) for s in held_out.values()]
    assert sum(s["num_bytes"] for s in info["splits"]) == info["dataset_size"]
    test = held_out["test"]
    assert [f["name"] for f in info["features"]] == list(test.features)
    assert all(f"`{voice}`" in card.text for voice in set(test["speaker_id"]))


def test_the_committed_cards_are_what_the_writer_makes_from_the_report(tmp_path):
    """No card is edited by hand or left behind by a newer report."""
    for name in dsmlab.bundled_models():
        (tmp_path / MODELS_DIR / name).mkdir(parents=True)
        shutil.copy(DATA / MODELS_DIR / name / "config.json", tmp_path / MODELS_DIR / name)
    for extra in (RECIPE_REPORT, RECIPE_SETTINGS):
        if (DATA / MODELS_DIR / extra).is_file():
            shutil.copy(DATA / MODELS_DIR / extra, tmp_path / MODELS_DIR)
    shutil.copytree(DATA / TEST_SPLIT_DIR, tmp_path / TEST_SPLIT_DIR)
    written = cards.write_cards(tmp_path)
    assert len(written) == len(dsmlab.bundled_models()) + 1
    for path in written:
        committed = DATA / path.relative_to(tmp_path)
        assert path.read_text() == committed.read_text(), f"{committed} is stale: rerun the cards"


def test_cards_without_a_report_is_one_clear_error(tmp_path):
    with pytest.raises(dsmlab.UsageError, match="recipe_report.json is missing"):
        cards.write_cards(tmp_path)
