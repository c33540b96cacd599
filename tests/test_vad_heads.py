import pytest
import torch

import dsmlab
from dsmlab.bundled import bundled_models
from dsmlab.data import load_data
from dsmlab.train.vad_heads import END_OF_TURN, HEAD_DIM, SPEAKING, end_of_turn_labels, fit_head


def test_labels_turn_to_end_of_turn_on_the_first_frame_that_starts_after_the_last_word():
    labels = end_of_turn_labels(last_end_s=0.2, n_frames=5)  # frames start 0, .08, .16, .24, .32
    assert labels.tolist() == [SPEAKING, SPEAKING, SPEAKING, END_OF_TURN, END_OF_TURN]
    assert end_of_turn_labels(0.16, 3).tolist() == [SPEAKING, SPEAKING, END_OF_TURN]


def test_the_fitted_head_separates_held_out_features():
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(16, generator=generator)
    x = torch.randn(2000, 16, generator=generator)
    y = torch.where(x @ direction > 0, END_OF_TURN, SPEAKING)
    weight = fit_head(x[:1500], y[:1500])
    assert weight.shape == (HEAD_DIM, 16)
    predicted = (x[1500:] @ weight.T).argmax(dim=1)
    assert (predicted == y[1500:]).float().mean() > 0.95


@pytest.mark.parametrize("name", list(bundled_models()))
def test_bundled_end_of_turn_is_low_while_speaking_and_high_after(name):
    model = dsmlab.load(name, device="cpu")
    assert model.has_vad
    utterance = next(iter(load_data("synth", max_samples=1)))
    transcript = dsmlab.transcribe(model, utterance.audio, sample_rate=24000)
    last_end = utterance.words[-1]["end"]
    heard_until = (torch.arange(len(transcript.end_of_turn)) + 1) / 12.5 - model.prefix_s
    probability = torch.tensor(transcript.end_of_turn)
    speaking = probability[heard_until < last_end - 0.3]
    after = probability[heard_until > last_end + 0.4]
    assert speaking.mean() < 0.2 and after.mean() > 0.8
    fired = [t for t in transcript.end_of_turn_times(0.7, 2) if t >= last_end]
    assert fired and fired[0] - last_end < 0.6
