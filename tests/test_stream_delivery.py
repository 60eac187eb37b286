"""From camera to receivers, end to end: the worker reads the labelled clip, and its events
reach a real mosquitto broker (per camera and per subject topics) and a local webhook
receiver (signed), configured the way an operator would (EventSettings)."""

from __future__ import annotations

import json
from pathlib import Path

from brokers import WebhookReceiver, mosquitto, wait_until
from facegate.config import CameraSettings, EventSettings, MqttSettings, Settings, WebhookSettings
from facegate.events.webhook import verify_signature
from facegate.stream.runner import CameraRun
from stream_truth import enroll_clip_people
from test_event_sinks import Subscriber

SECRET = "a-shared-secret-for-tests"


def test_clip_events_reach_mqtt_and_a_signed_webhook(tmp_path: Path, data_root: Path) -> None:
    with mosquitto(tmp_path) as (host, port), WebhookReceiver() as hook:
        settings = Settings(
            data_dir=tmp_path / "data",
            events=EventSettings(
                webhooks=[WebhookSettings(url=hook.url, secret=SECRET)],
                mqtt=MqttSettings(host=host, port=port),
            ),
        )
        truth = enroll_clip_people(settings, data_root / "video")
        miranda = next(sid for sid, who in truth.items() if who == "lin-manuel-miranda")
        subscriber = Subscriber(host, port)
        clip = data_root / "video" / "short_hamilton_clip.mp4"
        run = CameraRun(settings, CameraSettings(name="stage", source=str(clip), realtime=False))
        try:
            run.start()
            assert run.wait(120), "the clip was not read in time"
        finally:
            run.close()  # delivers what is queued
        published = sum(run.worker.counts.events.values())
        assert wait_until(lambda: len(subscriber.received()) >= published, timeout=10)
        subscriber.close()

    sinks = {s.name.split(":")[0]: s for s in run.publisher.stats()}
    assert sinks["database"].delivered == published
    assert sinks["webhook"].delivered == published and sinks["webhook"].dead_letters == 0
    assert sinks["mqtt"].delivered == published

    # MQTT: every event on the camera's topic; Miranda's also on his own subject topic.
    topics = [topic for topic, _ in subscriber.received()]
    assert topics.count("facegate/cameras/stage/events") == published
    on_subject = [
        json.loads(body)
        for topic, body in subscriber.received()
        if topic == f"facegate/subjects/{miranda}/events"
    ]
    assert on_subject and all(e["kind"] == "identified" for e in on_subject)
    assert all(e["subject_name"] == "Lin-Manuel Miranda" for e in on_subject)

    # Webhook: every delivery signed with the shared secret; no snapshot in any payload.
    assert len(hook.requests) == published
    for request in hook.requests:
        assert verify_signature(
            SECRET,
            request.headers["x-facegate-timestamp"],
            request.headers["x-facegate-signature"],
            request.body,
        )
        assert "snapshot" not in json.loads(request.body)
    kinds = {json.loads(r.body)["kind"] for r in hook.requests}
    assert kinds == {"track_started", "identified", "unknown", "track_ended"}
