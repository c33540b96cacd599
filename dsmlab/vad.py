"""Semantic VAD: turn per-frame end-of-turn probabilities into end-of-turn events."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

END_OF_TURN_HEAD = 2  # which extra head is end-of-turn (Kyutai reads heads[2][..., 0])


@dataclass
class EndOfTurnDetector:
    """Fires once when the probability stays >= `threshold` for `hold_frames` frames in a row.

    It re-arms when the probability drops below the threshold, so one detector follows a
    whole conversation. `fired_frames` lists the frames (from the first fed) where it fired.
    """

    threshold: float = 0.5
    hold_frames: int = 1
    frame: int = 0
    run: int = 0
    fired_frames: list[int] | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.hold_frames < 1:
            raise ValueError(f"hold_frames must be >= 1, got {self.hold_frames}")
        self.fired_frames = []

    def update(self, probability: float) -> bool:
        """Feed one frame's probability; True on the frame where the detector fires."""
        self.run = self.run + 1 if probability >= self.threshold else 0
        fired = self.run == self.hold_frames
        if fired:
            self.fired_frames.append(self.frame)
        self.frame += 1
        return fired


def end_of_turn_frames(
    probabilities: Iterable[float], threshold: float = 0.5, hold_frames: int = 1
) -> list[int]:
    """Frames at which an `EndOfTurnDetector` fires over a whole probability sequence."""
    detector = EndOfTurnDetector(threshold, hold_frames)
    for p in probabilities:
        detector.update(float(p))
    return detector.fired_frames
