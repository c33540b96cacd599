import random

import numpy as np
import pytest
import torch

import dsmlab
from dsmlab import conversations
from dsmlab.bundled import bundled_models
from dsmlab.conversations import Boundary, Conversation, build_conversation, plan_turns
from dsmlab.data import load_data
from dsmlab.train.vad_heads import (
    END_OF_TURN,
    FINISHED,
    HEAD_DIM,
    SPEAKING,
    UNFINISHED,
    fit_head,
    frame_labels,
)


def test_each_step_is_labelled_by_the_silence_its_frame_starts_in():
    boundaries = [
        Boundary(0.2, "unfinished", 0.16),  # silent from 0.2 to 0.36
        Boundary(0.5, "finished", 0.1),
        Boundary(0.7, "end_of_turn", 0.3),
        Boundary(1.1, "hesitation", 0.1),  # after "uh": a sentence unfinished as any
    ]
    talk = Conversation(np.zeros(24000, np.float32), 24000, boundaries)
    labels = frame_labels(talk, 16)  # frames start at 0, 0.08, 0.16, ...
    S, U, F, E = SPEAKING, UNFINISHED, FINISHED, END_OF_TURN
    assert labels.tolist() == [S, S, S, U, U, S, S, F, S, E, E, E, E, S, U, S]


def test_the_fitted_head_separates_held_out_features():
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(16, generator=generator)
    x = torch.randn(2000, 16, generator=generator)
    y = torch.where(x @ direction > 0, END_OF_TURN, SPEAKING)
    weight = fit_head(x[:1500], y[:1500])
    assert weight.shape == (HEAD_DIM, 16)
    predicted = (x[1500:] @ weight.T).argmax(dim=1)
    assert (predicted == y[1500:]).float().mean() > 0.95


@pytest.fixture(scope="module")
def held_out_conversations():
    """Conversations between the bundled test split's voices (training never heard them),
    with a pause inside every sentence that has an inner word boundary."""
    rows = list(load_data("synth", max_samples=40))
    rng = random.Random(0)
    plans = plan_turns(rows, conversations=3, turns=4, max_sentences=2, rng=rng)
    return [build_conversation(p, 24000, [2.5], [2.0], rng, 1.0) for p in plans]


@pytest.mark.parametrize("name", list(bundled_models()))
def test_bundled_heads_wait_out_an_unfinished_sentence_and_call_the_end_of_a_turn(
    name, held_out_conversations
):
    model = dsmlab.load(name, device="cpu")
    assert model.has_vad
    during = {"speaking": [], conversations.UNFINISHED: [], conversations.END_OF_TURN: []}
    for talk in held_out_conversations:
        p = torch.tensor(dsmlab.transcribe(model, talk.audio, 24000).end_of_turn)
        heard = (torch.arange(len(p)) + 1) / 12.5 - model.prefix_s
        for b in talk.boundaries:  # once the model has heard the silence for its delay
            inside = (heard > b.time + model.delay_s + 0.2) & (heard < b.time + b.pause_s)
            if b.kind in during:
                during[b.kind].append(p[inside])
        for w in talk.words:
            during["speaking"].append(p[(heard > w["start"]) & (heard < w["end"])])
    mean = {kind: float(torch.cat(values).mean()) for kind, values in during.items()}
    assert mean["speaking"] < 0.1
    # the same silence, heard past the delay: the words say whether the turn is over
    # (measured: 0.09 to 0.30 in an unfinished sentence, 0.61 to 0.87 after a turn)
    assert mean[conversations.UNFINISHED] < mean[conversations.END_OF_TURN] - 0.35
    assert mean[conversations.END_OF_TURN] > 0.5
