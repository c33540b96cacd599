import numpy as np
import pytest
from conftest import make_audio
from reference import kyutai_padding, plain_loop

from dsmlab import EndOfTurnDetector, end_of_turn_frames, transcribe

PROBS = [0.1, 0.6, 0.7, 0.2, 0.9, 0.9, 0.9, 0.1]


@pytest.mark.parametrize(("hold", "expected"), [(1, [1, 4]), (2, [2, 5]), (3, [6]), (4, [])])
def test_detector_fires_where_the_hold_is_reached_and_rearms_below_threshold(hold, expected):
    assert end_of_turn_frames(PROBS, threshold=0.5, hold_frames=hold) == expected


def test_detector_threshold_is_inclusive_and_streaming_update_agrees():
    assert end_of_turn_frames([0.5, 0.49, 0.8], threshold=0.5) == [0, 2]
    detector = EndOfTurnDetector(threshold=0.5, hold_frames=2)
    fired = [detector.update(p) for p in PROBS]
    assert [i for i, f in enumerate(fired) if f] == detector.fired_frames == [2, 5]


def test_detector_rejects_bad_settings():
    with pytest.raises(ValueError, match="threshold"):
        EndOfTurnDetector(threshold=0.0)
    with pytest.raises(ValueError, match="hold_frames"):
        EndOfTurnDetector(hold_frames=0)


def test_transcript_vad_probabilities_are_the_end_of_turn_head_per_frame(tiny, tiny_novad):
    pcm = make_audio(1.0, seed=8)
    _, reference = plain_loop(tiny, kyutai_padding(pcm, tiny), vad=True)
    transcript = transcribe(tiny, pcm.numpy(), sample_rate=24000)
    assert len(transcript.end_of_turn) == len(transcript.tokens)
    np.testing.assert_allclose(transcript.end_of_turn, reference, atol=1e-5)
    assert transcribe(tiny_novad, pcm.numpy(), sample_rate=24000).end_of_turn is None


def test_end_of_turn_times_are_audio_times_of_the_firing_frames(tiny):
    transcript = transcribe(tiny, make_audio(1.0, seed=9).numpy(), sample_rate=24000)
    transcript.end_of_turn = [0.0] * 10 + [0.9, 0.9, 0.1, 0.8]
    # frames 10 and 13 fire with hold 1; a frame's time is its end, minus the 0.16 s prefix
    assert transcript.end_of_turn_times(0.5, 1) == pytest.approx([0.72, 0.96])
    assert transcript.end_of_turn_times(0.5, 2) == pytest.approx([0.8])
