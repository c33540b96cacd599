"""One-shot Mimi encoding (a whole stream in one non-streaming call) against the streaming
encode of Kyutai's loop, on the bundled tokenizer and the released Mimi at random weights.

Within the encoder transformer's context the codes are equal, whatever the lengths and batch
composition. Beyond it moshi's non-streaming attention window and its streaming KV cache
differ, and some codes change (0.4 to 0.6% measured here): so the scheduler encodes frame by
frame, or K frames per call with the transformer still stepped frame by frame
(tests/test_stepper.py), never whole streams.
"""

import pytest
import torch
from moshi.models.loaders import get_mimi
from moshi.utils.compile import no_compile

import dsmlab
from dsmlab.architectures import MIMI_CONFIG, fill_codebooks
from dsmlab.train.audio_tokenizer import streaming_encode
from tests.conftest import make_audio


@pytest.fixture(scope="module", params=["bundled", "released"])
def mimi(request):
    if request.param == "bundled":
        return dsmlab.load("synth-d4", device="cpu").mimi
    torch.manual_seed(0)
    released = get_mimi(None, MIMI_CONFIG, num_codebooks=32)
    fill_codebooks(released, seed=0)
    return released


def context_frames(mimi) -> int:
    """Frames (80 ms) the encoder transformer attends to."""
    context = mimi.encoder_transformer.transformer.layers[0].self_attn.context
    return context * mimi.frame_rate // mimi.encoder_frame_rate


@pytest.mark.parametrize("lengths", [[1], [7, 3], [24, 1, 11]])
def test_one_shot_codes_equal_streaming_codes_within_the_context(mimi, lengths):
    assert max(lengths) <= context_frames(mimi)
    pcms = [make_audio(n * 0.08, seed=n) for n in lengths]
    streamed = streaming_encode(mimi, pcms)
    with torch.no_grad(), no_compile():
        alone = [mimi.encode(p[None, None])[0] for p in pcms]
        longest = max(p.numel() for p in pcms)
        batch = torch.stack([torch.nn.functional.pad(p, (0, longest - p.numel())) for p in pcms])
        together = mimi.encode(batch[:, None])
    for k, codes in enumerate(streamed):
        assert torch.equal(alone[k], codes)
        assert torch.equal(together[k, :, : codes.shape[1]], codes)
