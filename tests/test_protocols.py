"""Named definitions: --protocol and --normalizer reproduce Kyutai's and the leaderboard's
conventions, results say which were used, and the leaderboard manifest scores to the same WER."""

import json

import datasets
import kaldialign
import pytest
import torch
from evaldata import save_to_disk
from reference import plain_loop

import dsmlab
from eval import wer
from eval.records import read_records


def run(model_dir, data, out, *extra):
    assert wer.main(["--model", str(model_dir), "--dataset", data, "--out", str(out), *extra]) == 0
    return json.loads((out / "results.json").read_text()), read_records(out)


def static_batch_tokens(model, pcms, batch, margin_s):
    """Kyutai's evaluation loop: consecutive batches, each row padded with the prefix and
    delay + margin, then to the batch's longest; every row's tokens over the whole batch."""
    tokens = []
    for first in range(0, len(pcms), batch):
        group = [
            torch.nn.functional.pad(
                p,
                (
                    int(model.prefix_s * 24000),
                    int((model.delay_s + margin_s) * 24000),
                ),
            )
            for p in pcms[first : first + batch]
        ]
        longest = max(len(p) for p in group)
        longest += -longest % 1920
        tokens += [
            plain_loop(model, torch.nn.functional.pad(p, (0, longest - len(p)))) for p in group
        ]
    return tokens


@pytest.mark.parametrize(("protocol", "margin_s"), [("kyutai", 0.5), ("oalb", 0.0)])
def test_static_protocols_pad_each_batch_to_its_longest_in_dataset_order(
    protocol, margin_s, tiny_novad, tiny_novad_dir, tmp_path
):
    data = save_to_disk(tmp_path / "ds", n=5)  # 1.0, 1.25, 1.5, 1.75, 1.0 s
    results, records = run(
        tiny_novad_dir, data, tmp_path / "r", "--protocol", protocol, "--batch-size", "2"
    )
    pcms = [dsmlab.load_audio(r["audio"]["bytes"]) for r in datasets.load_from_disk(data)]
    expected = static_batch_tokens(tiny_novad, pcms, 2, margin_s)
    texts = [
        tiny_novad.tokenizer.decode([t for t in tokens if t > 3]).strip() for tokens in expected
    ]
    assert [r["hypothesis"] for r in records] == texts
    described = results["definitions"]["protocol"]
    assert described["name"] == protocol and described["batch_size"] == 2
    assert described["trailing"] == f"audio_delay_seconds + {margin_s} s of silence"
    assert "static batches of 2 in dataset order" in described["batching"]


def test_the_dsmlab_protocol_gives_each_utterance_its_own_padding(
    tiny_novad, tiny_novad_dir, tmp_path
):
    data = save_to_disk(tmp_path / "ds", n=3)
    _, records = run(tiny_novad_dir, data, tmp_path / "r", "--batch-size", "2")
    pcms = [dsmlab.load_audio(r["audio"]["bytes"]) for r in datasets.load_from_disk(data)]
    alone = [dsmlab.transcribe(tiny_novad, p.numpy(), 24000).text for p in pcms]
    assert [r["hypothesis"] for r in records] == alone


def test_results_name_their_protocol_normalizer_and_both_wers(tmp_path):
    """The bundled default under each protocol; each result says what its numbers mean."""
    found = {}
    for protocol in ("dsmlab", "kyutai", "oalb"):
        out = tmp_path / protocol
        args = ["--max-samples", "6", "--protocol", protocol, "--out", str(out)]
        assert wer.main(args) == 0
        results = json.loads((out / "results.json").read_text())
        found[protocol] = results
        definitions = results["definitions"]
        assert definitions["normalizer"] == ("oalb" if protocol == "oalb" else "whisper")
        assert definitions["protocol"]["name"] == protocol
        for metric in ("corpus_wer", "mean_utterance_wer", "corpus_cer", "mean_utterance_cer"):
            assert metric in results["metrics"] and metric in definitions
    assert found["kyutai"]["definitions"]["protocol"]["batch_size"] == 32
    assert found["oalb"]["definitions"]["protocol"]["batch_size"] == 64
    assert "decoding, resampling" in found["oalb"]["speed"]["definition"]


def test_the_leaderboard_manifest_scores_to_the_results_wer(tmp_path):
    """Scored as open_asr_leaderboard's eval_utils.score_results scores a manifest: the oalb
    normalizer, then kaldialign's batch_error_rate with merge_compounds."""
    out = tmp_path / "run"
    assert wer.main(["--max-samples", "8", "--normalizer", "oalb", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    (manifest,) = (out / "oalb").glob("MODEL_*_DATASET_*_test.jsonl")
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert set(lines[0]) == {"audio_filepath", "duration", "time", "text", "pred_text"}
    assert len(lines) == results["metrics"]["utterances"] == 8
    normalize = dsmlab.get_normalizer("oalb", "en")
    scored = kaldialign.batch_error_rate(
        [tuple(normalize(line["text"]).split()) for line in lines],
        [tuple(normalize(line["pred_text"]).split()) for line in lines],
        merge_compounds=True,
    )
    assert round(100 * scored["err_rate"], 2) == round(100 * results["metrics"]["corpus_wer"], 2)
    rtfx = sum(line["duration"] for line in lines) / sum(line["time"] for line in lines)
    assert rtfx == pytest.approx(results["speed"]["rtfx"], rel=1e-6)


def test_normalizers_change_the_identity_of_a_run(tiny_novad_dir, tmp_path, capsys):
    data = save_to_disk(tmp_path / "ds", n=2)
    run(tiny_novad_dir, data, tmp_path / "r")
    args = ["--model", str(tiny_novad_dir), "--dataset", data, "--out", str(tmp_path / "r")]
    assert wer.main([*args, "--normalizer", "oalb"]) == 2
    assert "options.normalizer: whisper -> oalb" in capsys.readouterr().err
