"""eval.timestamps, eval.latency and eval.sweep end to end on bundled models, a few utterances:
their figures agree with the records they wrote and with what each delay implies."""

import csv
import json
from pathlib import Path

import pytest

import dsmlab
from eval import latency, metrics, sweep, timestamps
from eval.plots import against_delay
from eval.records import read_records

SAMPLES = ["--max-samples", "3", "--batch-size", "3"]


def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def timestamps_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ts") / "run"
    assert timestamps.main(["--model", "synth-d8", *SAMPLES, "--out", str(out)]) == 0
    return out


def test_timestamps_reports_the_errors_of_its_matched_words(timestamps_run):
    summary = results(timestamps_run)["metrics"]
    records = read_records(timestamps_run)
    recomputed = metrics.timestamp_metrics(
        records, dsmlab.get_normalizer("whisper", "en"), collar_s=0.2
    )
    assert {k: summary[k] for k in recomputed} == recomputed
    matches = [m for r in records for m in r["matches"]]
    assert summary["matched_words"] == len(matches) >= 5
    # the bundled models place words within a frame or two of the reference
    # matched words sit within two frames of the reference (the bundled models are weak
    # recognizers, 71-82% WER, but the words they get right they place well)
    assert summary["start_abs_median_s"] < 0.08 and summary["start_within_200ms"] >= 0.75
    assert summary["tcpwer"] >= summary["corpus_wer"]  # a word out of its time only adds errors
    assert (timestamps_run / "timestamp_errors.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def latency_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lat") / "run"
    args = ["--model", "synth-d16", *SAMPLES, "--flush-samples", "2", "--out", str(out)]
    assert latency.main(args) == 0
    return out


def test_latency_words_arrive_about_one_delay_after_they_are_spoken(latency_run):
    summary = results(latency_run)["metrics"]
    records = read_records(latency_run)
    lags = [m["latency"] for r in records for m in r["matches"]]
    assert summary["latency_words"] == len(lags) > 0
    assert summary["word_latency_max_s"] == pytest.approx(max(lags))
    # emitted = start + delay (1.28 s) + a frame per token; latency counts from the word's end
    assert 0.5 < summary["word_latency_median_s"] < 1.28 + 0.2
    low, high = summary["word_latency_median_s_ci95"]
    assert low <= summary["word_latency_median_s"] <= high
    # a word's lag from its start exceeds its lag from its end by the word's duration
    assert summary["word_lag_from_start_median_s"] > summary["word_latency_median_s"]
    # AL over stream time; at 1.28 s delay every word lags by more than the delay's share
    assert 0.5 < summary["al_mean_s"] < 3.0 and summary["laal_mean_s"] >= summary["al_mean_s"]
    assert summary["start_offset_mean_s"] > 1.28
    assert summary["ca_al_mean_s"] > summary["al_mean_s"]  # each step costs wall time


def test_latency_flush_is_faster_than_waiting_in_real_time(latency_run):
    result = results(latency_run)
    summary = result["metrics"]
    assert len(result["flush_latencies_s"]) == len(result["flush_study"]) == 2
    # 17 silent frames pushed at once on a model several times faster than real time
    assert summary["flush_wall_s_median"] < summary["real_time_final_s_median"]
    # the same silence, at once or in real time, at batch 1 or batch N: the same words
    assert summary["flush_same_words"] is True
    for study in result["flush_study"]:
        texts = study["texts"]
        assert texts["flush"] == texts["flush_batch"] == texts["real_time"]
        # without trailing silence the last delay's words are never written
        assert len(texts["no_silence"].split()) < len(texts["real_time"].split())
    for way in ("real_time", "no_silence"):  # which scores better depends on the model
        low, high = summary[f"{way}_corpus_wer_ci95"]
        assert low <= summary[f"{way}_corpus_wer"] <= high
    assert summary["realtime_factor"] == pytest.approx(0.08 / (summary["step_ms"] / 1000))
    assert (latency_run / "latency_cdf.png").stat().st_size > 10_000


def test_sweep_orders_models_by_delay_and_latency_grows_with_it(tmp_path, capsys):
    out = tmp_path / "sweep"
    models = ["--model", "synth-d16", "--model", "synth-d2"]
    assert sweep.main([*models, *SAMPLES, "--flush-samples", "1", "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"written to {out}/") and f"eval.report {out} " in last
    with (out / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["synth-d2", "synth-d16"]
    assert [float(r["delay_s"]) for r in rows] == [0.16, 1.28]
    short, long = (float(r["word_latency_median_s"]) for r in rows)
    assert long - short == pytest.approx(1.28 - 0.16, abs=0.25)
    for row in rows:
        per_model = results(out / row["model"])["metrics"]
        assert float(row["corpus_wer"]) == pytest.approx(per_model["corpus_wer"])
    sweep_json = json.loads((out / "sweep.json").read_text())
    assert sweep_json["rows"][0]["model"] == "synth-d2"
    (difference,) = sweep_json["differences"]  # two models: one paired difference
    assert (difference["from"], difference["to"], difference["utterances"]) == (
        "synth-d2",
        "synth-d16",
        3,
    )
    low, high = difference["ci95"]
    assert low <= difference["corpus_wer_difference"] <= high
    assert difference["corpus_wer_difference"] == pytest.approx(
        float(rows[1]["corpus_wer"]) - float(rows[0]["corpus_wer"])
    )
    assert (out / "against_delay.png").stat().st_size > 10_000


def test_against_delay_draws_an_interval_that_leaves_out_its_point(tmp_path):
    # a percentile bootstrap over 3 utterances can put the corpus WER outside its interval
    rows = [
        {"delay_s": 0.16, "corpus_wer": 0.5, "corpus_wer_ci95": [0.55, 0.9]},
        {"delay_s": 1.28, "corpus_wer": 0.3, "corpus_wer_ci95": [0.1, 0.25]},
    ]
    assert against_delay(rows, tmp_path / "a.png").stat().st_size > 10_000


def test_every_metric_a_script_writes_is_defined_in_metrics_md(
    timestamps_run, latency_run, tmp_path
):
    from eval import wer

    assert wer.main(["--model", "synth-d8", *SAMPLES, "--out", str(tmp_path / "wer")]) == 0
    documented = (Path(metrics.__file__).parent / "METRICS.md").read_text()
    keys = {
        key.removesuffix("_ci95")
        for run in (timestamps_run, latency_run, tmp_path / "wer")
        for key in results(run)["metrics"]
    }
    assert len(keys) > 60
    assert not sorted(k for k in keys if f"`{k}`" not in documented)
