"""The sinks the settings ask for: the database, each webhook, the MQTT broker."""

from __future__ import annotations

from facegate.config import EventSettings
from facegate.events.database import DatabaseSink
from facegate.events.model import EventSink
from facegate.events.mqtt import MqttSink
from facegate.events.webhook import WebhookSink
from facegate.gallery.sql_store import SqlStore


def build_sinks(settings: EventSettings, store: SqlStore | None) -> list[EventSink]:
    sinks: list[EventSink] = []
    if settings.record and store is not None:
        sinks.append(DatabaseSink(store))
    sinks += [WebhookSink(hook) for hook in settings.webhooks]
    if settings.mqtt is not None:
        sinks.append(MqttSink(settings.mqtt))
    return sinks
