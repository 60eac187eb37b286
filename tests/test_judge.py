"""TrackJudge: who a track is, from the votes of its best few shots."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pydantic import ValidationError

from facegate.config import StreamSettings, TrackingSettings
from facegate.stream.judge import WINDOW_FACTOR, Shot, TrackDecision, TrackJudge, Vote
from facegate.types import Face

CROP = np.zeros((16, 16, 3), np.uint8)
FACE = Face((2.0, 2.0, 14.0, 14.0), np.zeros((5, 2), np.float32) + 8.0, 0.9)
NAMES = {"a": "Alice", "b": "Bob"}
THRESHOLD = 0.4  # the operating point: named votes are above it, unnamed ones below


def shot(
    quality: float = 0.5,
    usable: float | None = None,
    vote: Vote | None = None,
    position: float = 0.0,
) -> Shot:
    usable = quality if usable is None else usable
    return Shot(quality, usable, position, (10.0, 10.0, 22.0, 22.0), CROP, FACE, vote)


def vote(subject: str | None, similarity: float) -> Vote:
    """``subject`` None: the nearest subject was below the operating point."""
    return Vote(subject, NAMES.get(subject or ""), similarity)


def voted(
    subject: str | None, similarity: float, quality: float = 0.5, position: float = 0.0
) -> Shot:
    return shot(quality, vote=vote(subject, similarity), position=position)


def similarity_of_votes(subject_id: str, shots: Sequence[Shot]) -> list[float]:
    """The scorer of a gallery with one person: every shot's nearest subject is that
    person, so its similarity to them is its vote's."""
    return [s.vote.similarity if s.vote else float("-inf") for s in shots]


def judge(**changes: object) -> TrackJudge:
    settings = TrackingSettings(**changes)
    return TrackJudge(settings, THRESHOLD, similarity_of_votes)


def record_each(j: TrackJudge, shots: Sequence[Shot]) -> list[TrackDecision | None]:
    """Record the shots one at a time; what each record returned."""
    return [j.record([s]) for s in shots]


def spread(votes: Sequence[tuple[str | None, float]], every: float = 0.5) -> list[Shot]:
    """Shots voting as given, ``every`` seconds apart, each better than the one before."""
    return [
        voted(subject, sim, quality=0.1 * (i + 1), position=every * i)
        for i, (subject, sim) in enumerate(votes)
    ]


# --- deciding ---------------------------------------------------------------------------
def test_two_agreeing_votes_identify_with_their_mean_similarity_and_best_shot() -> None:
    j = judge(min_agreement=2, max_shots=9, min_span_s=0.3)
    low = voted("a", 0.7, quality=0.4, position=1.0)
    high = voted("a", 0.9, quality=0.8, position=1.5)

    assert j.record([low]) is None
    decision = j.record([high])

    assert decision is not None and decision.identified
    assert (decision.subject_id, decision.name) == ("a", "Alice")
    assert decision.similarity == pytest.approx(0.8)
    assert decision.best is high
    assert decision.shots == 2
    assert decision.reason == "2 of 2 shots agree over 0.50 s"
    assert j.decided and j.decision is decision


def test_the_similarity_is_the_mean_over_every_embedded_shot() -> None:
    """Not only the agreeing ones: a below-threshold shot of the track pulls it down. The
    best shot is still the best agreeing one, however good the other looks."""
    j = judge(min_agreement=2, max_shots=9, min_span_s=0.3)
    below = voted(None, 0.2, quality=0.99, position=0.0)
    agree = [voted("a", 0.6, quality=0.3, position=0.5), voted("a", 0.8, 0.5, position=1.0)]

    decisions = record_each(j, [below, *agree])

    assert decisions[:2] == [None, None]
    decision = decisions[2]
    assert decision is not None and decision.subject_id == "a"
    assert decision.similarity == pytest.approx((0.2 + 0.6 + 0.8) / 3)
    assert decision.best is agree[1]
    assert decision.shots == 3 and decision.reason == "2 of 3 shots agree over 0.50 s"


UNKNOWN = {
    "two different people": (
        [("a", 0.7), ("b", 0.75), ("a", 0.72), ("b", 0.71)],
        "shots named 2 different people",
        0.75,
    ),
    "only one reached the threshold": (
        [("a", 0.7), (None, 0.3), (None, 0.2), (None, 0.1)],
        "only 1 of 4 shots reached the threshold (2 needed)",
        0.7,
    ),
    "none reached the threshold": (
        [(None, 0.3), (None, 0.35), (None, 0.2), (None, 0.1)],
        "none of 4 shots reached the threshold",
        0.35,
    ),
    "agreeing, but the track's mean below the threshold": (
        [(None, 0.1), (None, 0.1), ("a", 0.45), ("a", 0.45)],
        "2 of 4 shots named one person, but the track's mean similarity 0.275 is below "
        "the threshold 0.400",
        0.45,
    ),
}


@pytest.mark.parametrize(("votes", "reason", "top"), UNKNOWN.values(), ids=UNKNOWN.keys())
def test_unknown_once_max_shots_are_embedded_without_agreement(
    votes: list[tuple[str | None, float]], reason: str, top: float
) -> None:
    j = judge(min_agreement=2, max_shots=len(votes), min_span_s=0.3)
    shots = spread(votes)

    decisions = record_each(j, shots)

    assert decisions[:-1] == [None] * (len(votes) - 1)  # never identified on the way
    decision = decisions[-1]
    assert decision is not None and not decision.identified
    assert decision.name is None
    assert decision.reason == reason
    assert decision.similarity == pytest.approx(top)  # the highest vote similarity
    assert decision.best is shots[-1]  # the highest-quality embedded shot
    assert decision.shots == len(votes)


def test_votes_for_two_people_never_identify_even_when_one_has_enough() -> None:
    j = judge(min_agreement=2, max_shots=6, min_span_s=0.3)
    decisions = record_each(j, spread([("a", 0.8), ("b", 0.7), ("a", 0.8)]))
    assert decisions == [None, None, None]
    assert not j.decided


@pytest.mark.parametrize(
    ("positions", "identified"),
    [
        ([0.0, 0.1], False),
        ([0.0, 0.29], False),
        ([0.0, 0.3], True),
        ([0.0, 2.0], True),
        ([0.0, 0.1, 0.35], True),  # the span of all agreeing shots counts
    ],
)
def test_agreeing_shots_must_span_min_span_s(positions: list[float], identified: bool) -> None:
    j = judge(min_agreement=2, max_shots=9, min_span_s=0.3)
    decisions = record_each(j, [voted("a", 0.8, position=p) for p in positions])
    assert (decisions[-1] is not None) is identified
    assert decisions[:-1] == [None] * (len(positions) - 1)


def test_agreeing_shots_too_close_in_time_end_unknown_with_the_reason() -> None:
    j = judge(min_agreement=2, max_shots=9, min_span_s=0.3)
    assert record_each(j, [voted("a", 0.8, position=p) for p in (1.0, 1.1)]) == [None, None]

    decision = j.finish()
    assert not decision.identified
    assert decision.reason == (
        "2 shots named one person but only 1 of them are 0.30 s apart (2 needed)"
    )


def test_min_agreement_counts_only_shots_min_span_s_apart() -> None:
    j = judge(min_agreement=3, max_shots=9, min_span_s=0.3)
    decisions = record_each(j, [voted("a", 0.8, position=p) for p in (0.0, 0.04, 0.5)])
    assert decisions == [None, None, None]


def test_a_track_that_looks_less_like_the_person_can_still_be_identified_later() -> None:
    j = judge(min_agreement=2, max_shots=9, min_span_s=0.3)
    doubtful = spread([(None, 0.1), ("a", 0.5), ("a", 0.5)])
    assert record_each(j, doubtful) == [None, None, None]  # mean 0.367 < 0.4: not yet

    decision = j.record([voted("a", 0.9, position=2.0)])
    assert decision is not None and decision.subject_id == "a"
    assert decision.similarity == pytest.approx((0.1 + 0.5 + 0.5 + 0.9) / 4)
    assert decision.reason == "3 of 4 shots agree over 1.50 s"


@pytest.mark.parametrize(
    ("too_poor", "min_quality", "reason"),
    [
        (0, 0.05, "no shot of usable quality"),
        (2, 0.2, "no shot of usable quality (2 below 0.20)"),
    ],
)
def test_finish_without_embedded_shots_is_unknown(
    too_poor: int, min_quality: float, reason: str
) -> None:
    j = judge(min_shot_quality=min_quality)
    for _ in range(too_poor):
        j.offer(shot(0.9, usable=min_quality / 2))

    decision = j.finish()

    assert not decision.identified
    assert decision.reason == reason
    assert (decision.similarity, decision.best, decision.shots) == (None, None, 0)
    assert j.finish() is decision


def test_finish_decides_an_undecided_track_with_what_there_is() -> None:
    j = judge(min_agreement=2, max_shots=9)
    assert j.record([voted("a", 0.9)]) is None

    decision = j.finish()

    assert not decision.identified
    assert decision.reason == "only 1 of 1 shots reached the threshold (2 needed)"


# --- the window -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("usable", "min_quality", "kept"),
    [(0.04, 0.05, False), (0.05, 0.05, True), (0.3, 0.05, True), (0.29, 0.3, False)],
)
def test_shots_below_min_shot_quality_are_not_offered(
    usable: float, min_quality: float, kept: bool
) -> None:
    j = judge(min_shot_quality=min_quality)
    j.offer(shot(quality=0.9, usable=usable))  # quality does not rescue a poor shot

    assert (len(j.window), j.window_seen, j.too_poor) == ((1, 1, 0) if kept else (0, 0, 1))


@pytest.mark.parametrize(
    ("shots", "qualities", "window"),
    [
        (3, [0.1, 0.5, 0.3, 0.9, 0.2, 0.7], [0.9, 0.7, 0.5]),
        (2, [0.4, 0.3, 0.2, 0.1], [0.4, 0.3]),
        (1, [0.1, 0.2, 0.3, 0.4], [0.4]),
        (5, [0.6, 0.2], [0.6, 0.2]),
    ],
)
def test_the_window_keeps_the_best_shots_by_quality(
    shots: int, qualities: list[float], window: list[float]
) -> None:
    j = judge(shots=shots, min_agreement=1)
    for q in qualities:
        j.offer(shot(q))

    assert [s.quality for s in j.window] == window
    assert j.window_seen == len(qualities)
    assert [s.quality for s in j.take()] == window  # best first


def test_equal_quality_shots_are_ranked_by_usable() -> None:
    j = judge(shots=2)
    for usable in (0.2, 0.6, 0.4):
        j.offer(shot(0.5, usable=usable))
    assert [s.usable for s in j.window] == [0.6, 0.4]


@pytest.mark.parametrize("shots", [1, 2, 3, 5])
def test_ready_only_after_shots_times_window_factor_usable_shots(shots: int) -> None:
    j = judge(shots=shots, min_agreement=1, min_shot_quality=0.1)
    needed = shots * WINDOW_FACTOR
    for _ in range(3):  # too poor: never counted
        j.offer(shot(0.9, usable=0.01))

    for _ in range(needed - 1):
        j.offer(shot(0.5))
        assert not j.ready()
    j.offer(shot(0.5))
    assert j.ready()

    assert len(j.take()) == shots
    assert not j.ready() and j.window == [] and j.window_seen == 0  # the window starts over


@pytest.mark.parametrize(
    ("shots", "max_shots", "expected_takes"),
    [
        (3, 9, [3, 3, 3]),
        (3, 4, [3, 1]),
        (5, 3, [3]),
        (2, 5, [2, 2, 1]),
    ],
)
def test_take_never_exceeds_max_shots(
    shots: int, max_shots: int, expected_takes: list[int]
) -> None:
    j = judge(shots=shots, min_agreement=1, max_shots=max_shots)
    takes = []
    while not j.decided:
        for _ in range(shots * WINDOW_FACTOR):
            j.offer(shot(0.5))
        assert j.ready()
        taken = j.take()
        assert len(taken) <= max_shots - len(j.embedded)
        takes.append(len(taken))
        for s in taken:
            s.vote = vote(None, 0.1)  # nobody: the track is undecided until max_shots
        j.record(taken)

    assert takes == expected_takes
    assert len(j.embedded) == max_shots
    assert not j.ready()


# --- once decided -----------------------------------------------------------------------
def test_a_decision_is_final() -> None:
    j = judge(min_agreement=2, max_shots=9)
    decision = j.record(spread([("a", 0.8), ("a", 0.85)]))
    assert decision is not None and decision.subject_id == "a"

    j.offer(shot(0.99))
    assert j.window == [] and j.window_seen == 0
    assert j.record(spread([("b", 0.99), ("b", 0.99)])) is decision
    assert not j.ready()
    assert j.finish() is decision
    assert j.decision is decision


def test_an_unknown_decision_is_final_too() -> None:
    j = judge(min_agreement=1, max_shots=1)
    decision = j.record([voted(None, 0.2)])
    assert decision is not None and not decision.identified

    assert j.record([voted("a", 0.9)]) is decision
    assert j.finish() is decision


def test_record_of_a_shot_without_a_vote_raises() -> None:
    j = judge()
    with pytest.raises(ValueError, match="embedded"):
        j.record([voted("a", 0.9), shot(0.5)])
    assert j.embedded == []
    assert not j.decided


# --- settings ---------------------------------------------------------------------------
def test_min_agreement_above_max_shots_is_refused() -> None:
    with pytest.raises(ValidationError, match="min_agreement"):
        StreamSettings(tracking=TrackingSettings(min_agreement=5, max_shots=3))
    with pytest.raises(ValueError, match="min_agreement"):
        TrackJudge(TrackingSettings(min_agreement=5, max_shots=3), THRESHOLD, similarity_of_votes)


def test_min_agreement_equal_to_max_shots_is_allowed() -> None:
    settings = StreamSettings(tracking=TrackingSettings(min_agreement=3, max_shots=3))
    j = TrackJudge(settings.tracking, THRESHOLD, similarity_of_votes)
    decisions = record_each(j, spread([("a", 0.8)] * 3))
    assert decisions[:2] == [None, None]
    assert decisions[2] is not None and decisions[2].subject_id == "a"


# --- strangers --------------------------------------------------------------------------
STRANGER_BELOW = 0.2  # the threshold at tracking.stranger_fmr, below the operating point


def stranger_judge(**changes: object) -> TrackJudge:
    return TrackJudge(TrackingSettings(**changes), THRESHOLD, similarity_of_votes, STRANGER_BELOW)


def test_a_first_window_far_below_everyone_is_a_stranger_without_more_shots() -> None:
    j = stranger_judge(shots=3, max_shots=9)
    decisions = record_each(j, spread([(None, 0.05), (None, 0.19), (None, -0.1)]))

    assert decisions[:2] == [None, None]  # not before the window is complete
    decision = decisions[2]
    assert decision is not None and not decision.identified
    assert decision.shots == 3
    assert decision.reason.startswith("a stranger: none of the first 3 shots came near anyone")
    assert "best 0.190 < 0.200" in decision.reason


def test_one_shot_near_the_threshold_keeps_the_track_open() -> None:
    j = stranger_judge(shots=3, max_shots=9)
    assert record_each(j, spread([(None, 0.05), (None, 0.25), (None, 0.1)])) == [None] * 3
    assert not j.decided


def test_the_stranger_level_never_exceeds_the_operating_point() -> None:
    # A level above the operating threshold would call a track with a named shot a stranger.
    j = TrackJudge(TrackingSettings(shots=2), THRESHOLD, similarity_of_votes, 0.9)
    assert j.stranger_below == THRESHOLD
    assert record_each(j, spread([("a", 0.5), (None, 0.1)])) == [None, None]


def test_without_a_stranger_level_a_track_waits_for_max_shots() -> None:
    j = judge(shots=3, max_shots=6)
    decisions = record_each(j, spread([(None, 0.01)] * 6))
    assert decisions[:5] == [None] * 5
    assert (
        decisions[5] is not None and decisions[5].reason == "none of 6 shots reached the threshold"
    )


@pytest.mark.parametrize("fmr", [0.5, 1e-5, 0.02])
def test_an_uncalibrated_stranger_fmr_is_refused(fmr: float) -> None:
    with pytest.raises(ValidationError, match="stranger_fmr"):
        StreamSettings(tracking=TrackingSettings(stranger_fmr=fmr))


def test_stranger_fmr_zero_turns_early_strangers_off() -> None:
    assert StreamSettings(tracking=TrackingSettings(stranger_fmr=0)).tracking.stranger_fmr == 0
    with pytest.raises(ValidationError):
        TrackingSettings(stranger_fmr=-0.01)
