"""Active liveness against the attacks this machine can stage: APCER per attack type and
BPCER on genuine (synthetic) sequences, in the spirit of ISO/IEC 30107-3.

Every sequence is built by tests/liveness_media.py from ../shared/data only:
- print / screen / real_photo: image_F1 (printed photo), image_F2 (face on a tablet) and
  image_T1 (a live face, used as a photo) moved, scaled, rolled and tilted in front of
  the camera, following a random challenge:
  - naive: tilted the way the head should move (about the vertical axis for a turn, about
    the horizontal axis for a nod);
  - adaptive: precise moves (straight to each tilt, held, little wobble) and, for each
    step, the tilt (out of 360 per photo: 12 axes x 10 angles x 3
    camera distances) that our own detector reads best as that step while the face stays
    recognisably the same, found offline: an attacker who has facegate and tunes tilts;
  - mirrored adaptive: the same with a tablet, which may also show the picture mirrored
    (image_F2 as it is, and image_T1 shown on a screen).
- genuine: LFW photos of one person in the poses a challenge asks for (six people), with
  camera-like jitter. NOT live captures: they test the protocol, not liveness.
- face swap: a genuine sequence with one step shown by another person (an attack too).

Each sequence goes through the real detector, embedder and session logic
(``facegate.policy.liveness``), frame by frame, as the service would receive it. A
sequence that does not pass before it ends counts as rejected (the session would expire).

Usage: python benchmarks/liveness_attacks.py [--challenges 40] [--seed 7]
                                             [--out benchmarks/results/liveness.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from facegate.policy.liveness import (  # noqa: E402
    LivenessPolicy,
    LivenessSession,
    Pose,
    Status,
    classify_pose,
    new_challenge,
)
from facegate.service.liveness_gate import observe, same_face_for  # noqa: E402
from facegate.vision.pipeline import FacePipeline  # noqa: E402
from liveness_media import (  # noqa: E402
    GENUINE,
    NAIVE_TILT,
    Shot,
    Tilt,
    attack_frames,
    can_perform,
    genuine_frames,
    show_tilted,
    spoof_photo,
    swap_partner,
    tilt_grid,
)

DATA = ROOT.parent / "shared" / "data"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def run(
    pipeline: FacePipeline, policy: LivenessPolicy, challenge: Sequence[Pose], shots: list[Shot]
) -> tuple[bool, str]:
    """Feed the shots to a fresh session; (passed, outcome or failure reason)."""
    session = LivenessSession("bench", challenge, START, policy, same_face_for(pipeline, policy))
    for shot in shots:
        data = shot.jpeg()
        frame = observe(pipeline, pipeline.decode(data), shot.at, shot.digest)
        session.add(frame)
        status = session.status(shot.at)
        if status is Status.PASSED:
            return True, "passed"
        if status is not Status.PENDING:
            return False, _reason_kind(session.reason or status.value)
    return False, f"not completed (stuck at step {session.step}: {session.next_step})"


def _reason_kind(reason: str) -> str:
    """A failure reason without its numbers, for counting."""
    for prefix in ("wrong move", "the face changed", "too many unusable frames"):
        if reason.startswith(prefix):
            return reason if prefix == "wrong move" else prefix
    return reason


def adaptive_tilts(
    pipeline: FacePipeline, policy: LivenessPolicy, photo_kind: str, mirrors: Sequence[bool]
) -> tuple[dict[Pose, Tilt], dict[str, object]]:
    """For each pose, the tilt our detector reads most clearly as that pose while the face
    stays clearly the same (the smaller of the pose margin and a quarter of the similarity
    margin, similarity to the untilted photo at least 0.05 above the session's threshold):
    an attacker who has facegate and tunes the tilts offline."""
    photo = spoof_photo(DATA, photo_kind)
    thresholds = policy.thresholds
    same = same_face_for(pipeline, policy)
    rest = pipeline.analyze(show_tilted(photo))
    assert rest, f"no face in the untilted {photo_kind} photo"
    anchor = rest[0].embedding
    assert anchor is not None
    best: dict[Pose, tuple[float, Tilt]] = {}
    tried = 0
    for tilt in tilt_grid(mirrors):
        tried += 1
        image = show_tilted(
            photo, mirror=tilt.mirror, about=tilt.about, angle=tilt.angle, focal=tilt.focal
        )
        faces = pipeline.detect(image)
        if len(faces) != 1:
            continue
        pose = classify_pose(faces[0].landmarks, thresholds)
        if pose is None or pose is Pose.CENTRE:
            continue
        embedding = pipeline.embed(image, faces)[0].embedding
        assert embedding is not None
        kept = same.similarity(anchor, embedding) - same.threshold
        if kept < 0.05:
            continue
        q = faces[0].quality
        assert q is not None
        yaw, pitch = q.details["yaw_ratio"], q.details["pitch_ratio"]
        margin = {
            Pose.LEFT: yaw - thresholds.yaw_turn,
            Pose.RIGHT: -thresholds.yaw_turn - yaw,
            Pose.UP: thresholds.pitch_up - pitch,
            Pose.DOWN: pitch - thresholds.pitch_down,
        }[pose]
        score = min(margin, kept / 4)  # both: clearly the pose, clearly the same face
        if pose not in best or score > best[pose][0]:
            best[pose] = (score, tilt)
    summary: dict[str, object] = {
        "tilts_tried": tried,
        "reachable_poses": sorted(p.value for p in best),
        "best_tilt": {
            p.value: {"about": t.about, "angle": t.angle, "focal": t.focal, "mirror": t.mirror}
            for p, (_, t) in best.items()
        },
    }
    return {p: t for p, (_, t) in best.items()}, summary


def upper_95(errors: int, n: int) -> float:
    """The one-sided 95 % Clopper-Pearson upper bound of a rate of ``errors`` in ``n``
    (0 in 40: 7.2 %)."""
    if errors >= n:
        return 1.0

    def tail(p: float) -> float:  # P(X <= errors) for X ~ Binomial(n, p)
        return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(errors + 1))

    low, high = errors / n, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if tail(mid) > 0.05 else (low, mid)
    return high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--challenges", type=int, default=40, help="sequences per attack type")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/liveness.json")
    args = parser.parse_args()

    started = time.perf_counter()
    policy = LivenessPolicy()
    pipeline = FacePipeline("sface")
    rng = random.Random(args.seed)
    faces_root = DATA / "faces"

    results: dict[str, dict[str, object]] = {}
    adaptive_info: dict[str, object] = {}

    def tally(name: str, outcomes: list[tuple[bool, str]], *, genuine: bool) -> None:
        passed = sum(ok for ok, _ in outcomes)
        n = len(outcomes)
        entry: dict[str, object] = {"sequences": n, "passed": passed}
        if genuine:
            entry["bpcer"] = round(1 - passed / n, 4)
            entry["bpcer_95_upper"] = round(upper_95(n - passed, n), 4)
        else:
            entry["apcer"] = round(passed / n, 4)
            entry["apcer_95_upper"] = round(upper_95(passed, n), 4)
        entry["outcomes"] = dict(Counter(reason for _, reason in outcomes).most_common())
        results[name] = entry
        print(f"{name:28s} {entry}", flush=True)

    # --- attacks ---------------------------------------------------------------------------
    # (name, photo, may the attacker mirror the picture, adaptive?)
    plans = [
        ("print_naive", "print", False, False),
        ("print_adaptive", "print", False, True),
        ("screen_naive", "screen", False, False),
        ("screen_adaptive", "screen", False, True),
        ("screen_mirrored_adaptive", "screen", True, True),
        ("real_photo_naive", "real_photo", False, False),
        ("real_photo_adaptive", "real_photo", False, True),
        ("real_photo_on_screen_mirrored_adaptive", "real_photo", True, True),
    ]
    for name, kind, mirror, adaptive in plans:
        photo = spoof_photo(DATA, kind)
        tilts: dict[Pose, Tilt] | None = None
        if adaptive:
            tilts, adaptive_info[name] = adaptive_tilts(
                pipeline, policy, kind, (False, True) if mirror else (False,)
            )
        outcomes = []
        for _ in range(args.challenges):
            challenge = new_challenge(policy, rng)
            shots = attack_frames(photo, challenge, START, rng, tilts, precise=adaptive)
            outcomes.append(run(pipeline, policy, challenge, shots))
        tally(name, outcomes, genuine=False)

    # --- genuine and face swap --------------------------------------------------------------
    genuine: list[tuple[bool, str]] = []
    swaps: list[tuple[bool, str]] = []
    per_person: dict[str, dict[str, int]] = {}
    for person in GENUINE:
        done = passed = 0
        while done < args.challenges:
            challenge = new_challenge(policy, rng)
            if not can_perform(person, challenge):
                continue
            done += 1
            outcome = run(
                pipeline,
                policy,
                challenge,
                genuine_frames(faces_root, person, challenge, START, rng),
            )
            genuine.append(outcome)
            passed += outcome[0]
            step = rng.randrange(len(challenge) - 1)  # a directional step
            other = swap_partner(person, challenge[step])
            swapped = genuine_frames(faces_root, person, challenge, START, rng, swap=(step, other))
            swaps.append(run(pipeline, policy, challenge, swapped))
        per_person[person] = {"sequences": done, "passed": passed}
    tally("genuine", genuine, genuine=True)
    results["genuine"]["per_person"] = per_person
    tally("face_swap", swaps, genuine=False)

    attack_names = [n for n in results if n != "genuine"]
    report = {
        "benchmark": "liveness_attacks",
        "command": "python benchmarks/liveness_attacks.py "
        f"--challenges {args.challenges} --seed {args.seed}",
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or "?"},
        "policy": {
            "thresholds": {
                k: getattr(policy.thresholds, k)
                for k in (
                    "yaw_turn",
                    "yaw_centre",
                    "pitch_up",
                    "pitch_down",
                    "pitch_centre_low",
                    "pitch_centre_high",
                )
            },
            "step_counts": list(policy.step_counts),
            "hold_frames": policy.hold_frames,
            "wrong_hold_frames": policy.wrong_hold_frames,
            "same_face_fmr": policy.same_face_fmr,
            "same_face_threshold": same_face_for(pipeline, policy).threshold,
            "naive_tilt_degrees": {p.value: t for p, t in NAIVE_TILT.items()},
        },
        "results": results,
        "apcer_max": max(results[n]["apcer"] for n in attack_names),  # type: ignore[type-var]
        "bpcer": results["genuine"]["bpcer"],
        "adaptive_search": adaptive_info,
        "caveats": [
            "three attack photos, one printed, one on a tablet, one a real face used as a "
            "photo: far too few to measure a PAD system; the figures bound nothing",
            "genuine sequences are different LFW photos of one person, not a live capture",
            "a sequence that never completes counts as rejected (it would expire)",
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} in {report['seconds']} s")


if __name__ == "__main__":
    main()
