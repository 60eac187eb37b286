"""Event sinks against real services: a mosquitto broker and a local HTTP receiver."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion

from brokers import MosquittoBroker, WebhookReceiver, free_port, mosquitto, wait_until
from facegate.config import MqttSettings, WebhookSettings
from facegate.events.model import EventKind, StreamEvent
from facegate.events.mqtt import MqttSink, topic_level
from facegate.events.webhook import WebhookSink, sign, verify_signature

SECRET = "a-webhook-secret-of-some-length"


def identified(camera: str = "door-1", subject_id: str = "subj-1") -> StreamEvent:
    return StreamEvent(
        kind=EventKind.IDENTIFIED,
        at=datetime.now(UTC),
        camera=camera,
        track_id=7,
        stream_time=12.5,
        collection_id="staff",
        subject_id=subject_id,
        subject_name="Ada",
        similarity=0.81234,
        quality=0.9,
        shots=4,
        bbox=(10.0, 20.0, 110.0, 140.0),
    )


def unknown(camera: str = "door-1") -> StreamEvent:
    return StreamEvent(
        kind=EventKind.UNKNOWN,
        at=datetime.now(UTC),
        camera=camera,
        track_id=8,
        stream_time=13.0,
        reason="no_match",
    )


# -- MQTT ----------------------------------------------------------------------------------


class Subscriber:
    """A plain paho client that records what arrives under ``facegate/#``."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe("facegate/#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._subscribed.wait(5), "subscriber did not subscribe"

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    with mosquitto(tmp_path_factory.mktemp("mosquitto")) as address:
        yield address


@pytest.fixture
def subscriber(broker: tuple[str, int]) -> Iterator[Subscriber]:
    sub = Subscriber(*broker)
    yield sub
    sub.close()


def test_mqtt_identified_goes_to_camera_and_subject_topics(
    broker: tuple[str, int], subscriber: Subscriber
) -> None:
    host, port = broker
    sink = MqttSink(MqttSettings(host=host, port=port))
    assert sink.name == f"mqtt:{host}:{port}"
    known, stranger = identified(), unknown()
    sink.publish(known)
    sink.publish(stranger)
    assert wait_until(lambda: sink.stats().delivered == 2)
    assert wait_until(lambda: len(subscriber.received()) == 3)
    sink.close()

    by_topic: dict[str, list[dict[str, Any]]] = {}
    for topic, payload in subscriber.received():
        by_topic.setdefault(topic, []).append(json.loads(payload))
    assert by_topic == {
        "facegate/cameras/door-1/events": [known.payload(), stranger.payload()],
        "facegate/subjects/subj-1/events": [known.payload()],
    }
    stats = sink.stats()
    assert (stats.delivered, stats.pending, stats.dropped, stats.dead_letters) == (2, 0, 0, 0)


def test_mqtt_topic_levels_are_sanitised(broker: tuple[str, int], subscriber: Subscriber) -> None:
    assert topic_level("a/b+c#d\0e") == "a_b_c_d_e"
    assert topic_level("") == "_"
    sink = MqttSink(MqttSettings(host=broker[0], port=broker[1], qos=2))
    sink.publish(identified(camera="gate/2#+", subject_id="x/+/#"))
    assert wait_until(lambda: sink.stats().delivered == 1)
    assert wait_until(lambda: len(subscriber.received()) == 2)
    sink.close()
    topics = sorted(topic for topic, _ in subscriber.received())
    assert topics == ["facegate/cameras/gate_2__/events", "facegate/subjects/x____/events"]
    assert all(len(topic.split("/")) == 4 for topic in topics)


def test_mqtt_delivers_once_the_broker_comes_up(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path, port=free_port())
    sink = MqttSink(MqttSettings(host=broker.host, port=broker.port, qos=1))
    try:
        event = identified()
        sink.publish(event)
        # The first connection attempt has failed; the event waits in the sink.
        assert wait_until(lambda: sink.stats().last_error == "cannot reach the broker")
        assert (sink.stats().delivered, sink.stats().pending) == (0, 1)

        broker.start()
        subscriber = Subscriber(broker.host, broker.port)
        try:
            # paho retries after 1 s, then 2 s: well inside the bound.
            assert wait_until(lambda: sink.stats().delivered == 1, timeout=8)
            assert wait_until(lambda: len(subscriber.received()) == 2)
            assert all(json.loads(p) == event.payload() for _, p in subscriber.received())
        finally:
            subscriber.close()
        assert sink.stats().pending == 0
    finally:
        sink.close()
        broker.stop()


def test_mqtt_close_with_broker_down_keeps_count(caplog: pytest.LogCaptureFixture) -> None:
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=free_port(), queue_size=2))
    for _ in range(3):
        sink.publish(unknown())
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="facegate.events.mqtt"):
        sink.close(timeout=0.2)
    assert time.monotonic() - started < 3
    stats = sink.stats()
    # At most queue_size wait; the third was dropped unless the worker had already taken
    # the first off the queue (it then waits for a connection, still pending).
    assert stats.pending + stats.dropped == 3 and stats.delivered == 0
    assert "not delivered" in caplog.text
    sink.publish(unknown())
    assert sink.stats().dropped == stats.dropped + 1  # closed sinks accept nothing


# -- Webhook -------------------------------------------------------------------------------


def webhook(url: str, **overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {"url": url, "secret": SECRET, "backoff_s": 0.05, "timeout_s": 5}
    values.update(overrides)
    return WebhookSettings(**values)


def test_webhook_delivers_signed_event() -> None:
    with WebhookReceiver() as receiver:
        sink = WebhookSink(webhook(receiver.url + "?token=do-not-log"))
        assert sink.name == f"webhook:127.0.0.1:{receiver.port}"
        event = identified()
        sink.publish(event)
        assert wait_until(lambda: sink.stats().delivered == 1)
        sink.close()

    [request] = receiver.requests
    headers, body = request.headers, request.body
    assert json.loads(body) == event.payload()
    assert body == event.to_json()
    assert headers["content-type"] == "application/json"
    assert headers["x-facegate-event"] == "identified"
    assert headers["x-facegate-delivery"] == event.id
    timestamp = headers["x-facegate-timestamp"]
    assert abs(int(timestamp) - time.time()) < 10
    signature = headers["x-facegate-signature"]
    # Recomputed here without the library: HMAC-SHA256 over "<timestamp>." + body.
    digest = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    assert signature == "sha256=" + digest.hexdigest()
    assert signature == sign(SECRET.encode(), int(timestamp), body)

    assert verify_signature(SECRET, timestamp, signature, body)
    assert verify_signature(SECRET.encode(), timestamp, signature, body)
    assert not verify_signature(SECRET, timestamp, signature, body.replace(b"Ada", b"Eve"))
    assert not verify_signature("another-secret-entirely", timestamp, signature, body)
    assert not verify_signature(SECRET, timestamp, signature, body, now=int(timestamp) + 301)
    assert not verify_signature(SECRET, timestamp, signature, body, now=int(timestamp) - 301)
    assert not verify_signature(SECRET, str(int(timestamp) + 1), signature, body)
    assert not verify_signature(SECRET, None, signature, body)
    assert not verify_signature(SECRET, "soon", signature, body)
    assert not verify_signature(SECRET, timestamp, "sha256=\u00e9", body)
    stats = sink.stats()
    assert (stats.retries, stats.dead_letters, stats.pending, stats.last_error) == (0, 0, 0, None)


def test_webhook_retries_until_the_receiver_recovers() -> None:
    with WebhookReceiver(statuses=[503, 503], default=200) as receiver:
        sink = WebhookSink(webhook(receiver.url))
        event = unknown()
        sink.publish(event)
        assert wait_until(lambda: sink.stats().delivered == 1)
        sink.close()
    stats = sink.stats()
    assert (stats.delivered, stats.retries, stats.dead_letters, stats.pending) == (1, 2, 0, 0)
    assert stats.last_error == "HTTP 503"
    assert [r.headers["x-facegate-delivery"] for r in receiver.requests] == [event.id] * 3


@pytest.mark.parametrize("status", [408, 429])
def test_webhook_retries_timeout_and_rate_limit_answers(status: int) -> None:
    with WebhookReceiver(statuses=[status], default=204) as receiver:
        sink = WebhookSink(webhook(receiver.url))
        sink.publish(unknown())
        assert wait_until(lambda: sink.stats().delivered == 1)
        sink.close()
    assert sink.stats().retries == 1 and receiver.count() == 2


def test_webhook_dead_letter_when_receiver_is_down(caplog: pytest.LogCaptureFixture) -> None:
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        time.sleep(seconds)

    url = f"http://127.0.0.1:{free_port()}/hook?token=do-not-log"
    settings = webhook(url, max_attempts=4, backoff_s=0.05, max_backoff_s=0.15, timeout_s=1)
    with caplog.at_level(logging.WARNING, logger="facegate.events.webhook"):
        sink = WebhookSink(settings, sleep=sleep)
        sink.publish(identified())
        assert wait_until(lambda: sink.stats().dead_letters == 1)
        sink.close()
    stats = sink.stats()
    assert (stats.delivered, stats.retries, stats.pending) == (0, 3, 0)
    assert delays == [0.05, 0.1, 0.15]  # doubling, capped at max_backoff_s
    assert stats.last_error is not None and stats.last_error.startswith("ConnectError")
    assert "gave up" in caplog.text
    for text in (caplog.text, stats.last_error):
        assert SECRET not in text and "do-not-log" not in text


def test_webhook_counts_attempts_against_a_failing_receiver() -> None:
    with WebhookReceiver(default=500) as receiver:
        sink = WebhookSink(webhook(receiver.url, max_attempts=3, backoff_s=0.05))
        sink.publish(unknown())
        assert wait_until(lambda: sink.stats().dead_letters == 1)
        sink.close()
    assert receiver.count() == 3
    stats = sink.stats()
    assert (stats.delivered, stats.retries, stats.last_error) == (0, 2, "HTTP 500")
    arrivals = [r.at for r in receiver.requests]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # the backoff doubled


def test_webhook_client_error_is_not_retried() -> None:
    with WebhookReceiver(default=400) as receiver:
        sink = WebhookSink(webhook(receiver.url, max_attempts=5))
        sink.publish(unknown())
        assert wait_until(lambda: sink.stats().dead_letters == 1)
        sink.close()
    stats = sink.stats()
    assert (stats.delivered, stats.retries, stats.last_error) == (0, 0, "HTTP 400")
    assert receiver.count() == 1


def test_webhook_full_queue_drops_without_blocking() -> None:
    with WebhookReceiver() as receiver:
        receiver.gate.clear()  # the receiver holds its answers: a slow endpoint
        sink = WebhookSink(webhook(receiver.url, queue_size=1))
        sink.publish(unknown())
        assert wait_until(lambda: receiver.count() == 1)  # in flight, off the queue
        started = time.monotonic()
        for _ in range(5):
            sink.publish(unknown())  # one fits the queue, four are dropped
        assert time.monotonic() - started < 0.1
        assert (sink.stats().dropped, sink.stats().pending) == (4, 2)
        receiver.gate.set()
        assert wait_until(lambda: sink.stats().delivered == 2)
        sink.close()
    assert receiver.count() == 2


def test_webhook_close_interrupts_backoff(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    sink = WebhookSink(webhook(url, backoff_s=30, timeout_s=1))
    sink.publish(unknown())
    assert wait_until(lambda: sink.stats().last_error is not None)  # now in a 30 s backoff
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="facegate.events.webhook"):
        sink.close(timeout=0.2)
    assert time.monotonic() - started < 2
    stats = sink.stats()
    assert (stats.pending, stats.dead_letters, stats.delivered) == (1, 0, 0)
    assert "1 event(s) not delivered" in caplog.text
    sink.publish(unknown())
    assert sink.stats().dropped == 1  # closed sinks accept nothing
