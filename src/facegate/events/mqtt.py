"""MQTT sink: publish each event's JSON to ``<prefix>/cameras/<camera>/events`` and, when a
subject is named, ``<prefix>/subjects/<subject id>/events``; access decisions also to
``<prefix>/doors/<door>/decisions``, quota claims to ``<prefix>/quotas/<quota>/claims``."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTErrorCode
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from facegate.config import MqttSettings
from facegate.events.model import StreamEvent
from facegate.events.queued import QueuedSink

log = logging.getLogger("facegate.events.mqtt")

_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})


def topic_level(value: str) -> str:
    """``value`` as exactly one topic level: no separators, no wildcards, no NUL."""
    # Lone surrogates cannot be encoded as UTF-8, which MQTT topics must be.
    cleaned = value.translate(_UNSAFE).encode("utf-8", "replace").decode("utf-8")
    return cleaned or "_"


def event_topics(prefix: str, event: StreamEvent) -> list[str]:
    """The topics one event goes to."""
    base = prefix.rstrip("/")
    topics = [f"{base}/cameras/{topic_level(event.camera)}/events"]
    if event.door is not None:  # a door controller listens here for its open command
        topics.append(f"{base}/doors/{topic_level(event.door)}/decisions")
    if event.quota is not None:  # a dispenser listens here: hand out on a granted claim
        topics.append(f"{base}/quotas/{topic_level(event.quota)}/claims")
    if event.subject_id:
        topics.append(f"{base}/subjects/{topic_level(event.subject_id)}/events")
    return topics


class MqttSink(QueuedSink):
    """Publishes events to one broker from a daemon thread; paho reconnects on its own.

    ``publish`` never blocks: when ``queue_size`` events are waiting, the event is dropped
    and counted. An event counts as delivered once the broker acknowledged every topic it
    went to (for QoS 0: once it was written to the socket).
    """

    def __init__(
        self, settings: MqttSettings, *, client_id: str | None = None, name: str | None = None
    ) -> None:
        super().__init__(name or f"mqtt:{settings.host}:{settings.port}", settings.queue_size, log)
        self.settings = settings
        self._connected = threading.Event()
        # mid -> event id, and event id -> acks still awaited.
        self._mid_event: dict[int, str] = {}
        self._acks_needed: dict[str, int] = {}
        # on_publish may run before client.publish() has returned the mid to us.
        self._early_acks: set[int] = set()

        client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"facegate-{uuid.uuid4().hex[:12]}",
        )
        if settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else None
            client.username_pw_set(settings.username, password)
        if settings.tls:
            client.tls_set()  # system CA store, hostname checked
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        # connect_async + loop_start: the network thread keeps retrying until the broker is
        # up, so a broker that is down at start-up does not stop the camera.
        client.connect_async(settings.host, settings.port, keepalive=30)
        client.loop_start()
        self._thread.start()

    def _after_close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # -- worker thread ----------------------------------------------------------------------

    def _wait_connected(self) -> bool:
        """Block until connected; False when the sink is closing."""
        while not self._connected.wait(0.1):
            if self._stop.is_set():
                return False
        return True

    def _deliver(self, event: StreamEvent) -> None:
        payload = event.to_json()
        qos = self.settings.qos
        topics = event_topics(self.settings.topic_prefix, event)
        with self._lock:
            # Counted down per acknowledged topic, so an early ack of the first topic cannot
            # settle the event before the second one is even sent.
            self._acks_needed[event.id] = len(topics)
        for topic in topics:
            while True:
                if not self._wait_connected():
                    return  # closing: the event stays counted as pending
                info = self._client.publish(topic, payload, qos=qos)
                # QoS > 0 messages stay in paho's queue across a disconnect and are resent
                # on reconnect; a QoS 0 message is simply gone, so send it again.
                if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0:
                    continue
                break
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                with self._lock:
                    self._give_up(event.id, f"publish failed: {info.rc.name}")
                log.warning("%s: could not publish event %s: %s", self.name, event.id, info.rc)
                return
            with self._lock:
                if info.mid in self._early_acks:
                    self._early_acks.discard(info.mid)
                    self._acked(event.id)
                else:
                    self._mid_event[info.mid] = event.id

    def _acked(self, event_id: str) -> None:
        """One topic of the event acknowledged; delivered after the last (lock held)."""
        left = self._acks_needed.get(event_id)
        if left is None:
            return  # already given up
        if left > 1:
            self._acks_needed[event_id] = left - 1
            return
        del self._acks_needed[event_id]
        self._delivered += 1
        self._pending -= 1

    def _give_up(self, event_id: str, error: str) -> None:
        """Count the event as a dead letter (lock held)."""
        self._last_error = error
        if self._acks_needed.pop(event_id, None) is not None:
            self._dead_letters += 1
            self._pending -= 1

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            with self._lock:
                self._last_error = f"connect refused: {reason_code}"
            log.warning("%s: broker refused the connection: %s", self.name, reason_code)
            return
        log.info("%s: connected", self.name)
        self._connected.set()

    def _on_connect_fail(self, client: Client, userdata: Any) -> None:
        with self._lock:
            self._last_error = "cannot reach the broker"
        log.debug("%s: cannot reach the broker; retrying", self.name)

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        if self._stop.is_set():
            return
        with self._lock:
            self._last_error = f"disconnected: {reason_code}"
        log.warning("%s: disconnected (%s); reconnecting", self.name, reason_code)

    def _on_publish(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            event_id = self._mid_event.pop(mid, None)
            if event_id is None:
                self._early_acks.add(mid)
            elif reason_code.is_failure:  # MQTT 5 only; 3.1.1 acks carry no reason
                self._give_up(event_id, f"broker refused a message: {reason_code}")
            else:
                self._acked(event_id)
