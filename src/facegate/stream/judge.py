"""Decide who a track is from its best few shots, never from one frame.

Shots (faces of one track, with their quality) are collected in windows; from each
window only the best few are embedded and searched. A track is identified when
``min_agreement`` embedded shots name the same person, no shot names anyone else, the
agreeing shots are at least ``min_span_s`` apart (consecutive frames are one picture
seen twice, not two pieces of evidence), and the mean similarity of all its embedded
shots to that person reaches the threshold (a few lucky frames of a stranger do not).
It is unknown when ``max_shots`` have been embedded without that, when it ends
undecided, or early, as a stranger, when no shot of its first window came near anyone
(below ``stranger_below``, the threshold at ``tracking.stranger_fmr``): the rest of its
shots need not be embedded. It is decided once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facegate.config import TrackingSettings
from facegate.types import Face

Box = tuple[float, float, float, float]
# A window holds this many usable shots per embedded one: the best half of them is used.
WINDOW_FACTOR = 2


@dataclass(frozen=True, slots=True)
class Vote:
    """What one embedded shot says: the nearest subject, and whether it passed the
    operating point (``subject_id`` None: below it)."""

    subject_id: str | None
    name: str | None
    similarity: float


@dataclass(eq=False, slots=True)
class Shot:
    """A face of a track in one frame, cut out with a margin (``face`` is in the crop's
    pixels, ``bbox`` in the frame's)."""

    quality: float  # overall: ranks shots, and is reported
    usable: float  # the worst of size, sharpness and exposure: gates shots
    position: float
    bbox: Box
    crop: NDArray[np.uint8]
    face: Face
    vote: Vote | None = None
    embedding: NDArray[np.float32] | None = None


@dataclass(frozen=True, slots=True)
class TrackDecision:
    subject_id: str | None  # None: unknown
    name: str | None
    similarity: float | None
    best: Shot | None
    shots: int  # embedded shots the decision rests on
    reason: str

    @property
    def identified(self) -> bool:
        return self.subject_id is not None


# Each shot's similarity to one subject (its best template), in the shots' order.
SubjectScorer = Callable[[str, Sequence["Shot"]], Sequence[float]]


def _spaced(positions: Sequence[float], gap: float) -> int:
    """How many of the (sorted) times are at least ``gap`` apart, taken greedily."""
    count, last = 0, float("-inf")
    for position in positions:
        if position - last >= gap:
            count, last = count + 1, position
    return count


class TrackJudge:
    """``threshold``: the operating point's similarity; ``score_subject``: how similar
    each shot is to a given subject (for the track-level check); ``stranger_below``: a
    first window whose every shot scores below this is a stranger's (None: never early)."""

    def __init__(
        self,
        settings: TrackingSettings,
        threshold: float,
        score_subject: SubjectScorer,
        stranger_below: float | None = None,
    ) -> None:
        if settings.min_agreement > settings.max_shots:
            raise ValueError("min_agreement cannot exceed max_shots")
        self.settings = settings
        self.threshold = threshold
        # Never above the operating threshold: a shot that names someone is no stranger's.
        self.stranger_below = None if stranger_below is None else min(stranger_below, threshold)
        self.score_subject = score_subject
        self.window: list[Shot] = []
        self.window_seen = 0
        self.embedded: list[Shot] = []
        self.decision: TrackDecision | None = None
        self.too_poor = 0  # faces below min_shot_quality

    @property
    def decided(self) -> bool:
        return self.decision is not None

    def offer(self, shot: Shot) -> None:
        """Consider one face of the track; keep it if it is among the window's best."""
        if self.decided:
            return
        if shot.usable < self.settings.min_shot_quality:
            self.too_poor += 1
            return
        self.window_seen += 1
        self.window.append(shot)
        self.window.sort(key=lambda s: (s.quality, s.usable), reverse=True)
        del self.window[self.settings.shots :]

    def ready(self) -> bool:
        """Whether the window is full and shots should be embedded now."""
        s = self.settings
        return (
            not self.decided
            and len(self.embedded) < s.max_shots
            and self.window_seen >= s.shots * WINDOW_FACTOR
        )

    def take(self) -> list[Shot]:
        """The window's best shots to embed (the window starts over)."""
        room = self.settings.max_shots - len(self.embedded)
        chosen, self.window, self.window_seen = self.window[:room], [], 0
        return chosen

    def record(self, shots: Sequence[Shot]) -> TrackDecision | None:
        """Add embedded shots (each with its vote); the decision, if there is one now."""
        if any(s.vote is None for s in shots):
            raise ValueError("record shots after they were embedded and searched")
        self.embedded.extend(shots)
        return self._decide(final=False)

    def finish(self) -> TrackDecision:
        """The track ended: decide with what there is (unknown if undecided)."""
        decision = self.decision or self._decide(final=True)
        assert decision is not None
        return decision

    def _decide(self, *, final: bool) -> TrackDecision | None:
        if self.decision is not None:
            return self.decision
        s = self.settings
        votes = [shot.vote for shot in self.embedded if shot.vote is not None]
        named = Counter(v.subject_id for v in votes if v.subject_id)
        stranger = self._stranger(votes)
        exhausted = final or stranger or len(self.embedded) >= s.max_shots
        doubt = None
        if len(named) == 1:
            ((subject_id, count),) = named.items()
            if count >= s.min_agreement:
                self.decision, doubt = self._identify(subject_id, count)
                if self.decision is not None:
                    return self.decision
        if not exhausted:
            return None
        if not self.embedded:
            reason = "no shot of usable quality"
            if self.too_poor:
                reason += f" ({self.too_poor} below {s.min_shot_quality:.2f})"
        elif doubt is not None:
            reason = doubt
        elif len(named) > 1:
            reason = f"shots named {len(named)} different people"
        elif named:
            reason = (
                f"only {sum(named.values())} of {len(self.embedded)} shots reached the "
                f"threshold ({s.min_agreement} needed)"
            )
        elif stranger:
            top_similarity = max(v.similarity for v in votes)
            reason = (
                f"a stranger: none of the first {len(self.embedded)} shots came near anyone "
                f"(best {top_similarity:.3f} < {self.stranger_below:.3f})"
            )
        else:
            reason = f"none of {len(self.embedded)} shots reached the threshold"
        best_shot = max(self.embedded, key=lambda sh: (sh.quality, sh.usable), default=None)
        top = max((v.similarity for v in votes), default=None)
        self.decision = TrackDecision(None, None, top, best_shot, len(self.embedded), reason)
        return self.decision

    def _stranger(self, votes: Sequence[Vote]) -> bool:
        """A full first window (or more) of shots, every one far below anyone."""
        if self.stranger_below is None or len(self.embedded) < self.settings.shots:
            return False
        return all(v.similarity < self.stranger_below for v in votes)

    def _identify(self, subject_id: str, count: int) -> tuple[TrackDecision | None, str | None]:
        """Agreeing votes name one person; accept only if they are independent evidence
        (spread in time) and the track as a whole resembles that person: the mean
        similarity of every embedded shot to them reaches the threshold. Otherwise the
        doubt, as a reason."""
        s = self.settings
        agreeing = [sh for sh in self.embedded if sh.vote and sh.vote.subject_id]
        positions = sorted(sh.position for sh in agreeing)
        span = positions[-1] - positions[0]
        independent = _spaced(positions, s.min_span_s)
        if independent < s.min_agreement:
            return None, (
                f"{count} shots named one person but only {independent} of them are "
                f"{s.min_span_s:.2f} s apart ({s.min_agreement} needed)"
            )
        mean = float(np.mean(self.score_subject(subject_id, self.embedded)))
        if mean < self.threshold:
            return None, (
                f"{count} of {len(self.embedded)} shots named one person, but the track's "
                f"mean similarity {mean:.3f} is below the threshold {self.threshold:.3f}"
            )
        best = max(agreeing, key=lambda sh: (sh.quality, sh.usable))
        assert best.vote is not None
        decision = TrackDecision(
            subject_id,
            best.vote.name,
            mean,
            best,
            len(self.embedded),
            f"{count} of {len(self.embedded)} shots agree over {span:.2f} s",
        )
        return decision, None
