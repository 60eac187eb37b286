"""Schema migrations (Alembic) for every store: the database is brought to the newest
schema when a store opens it. A database made before migrations existed is refused."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from facegate.errors import SchemaError

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found is not None, "facegate ships at least one migration"
    return found


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, label: str) -> None:
    """Create or migrate the schema to the newest revision, in one transaction."""
    with engine.begin() as connection:
        tables = set(inspect(connection).get_table_names())
        if "gallery_state" in tables and "alembic_version" not in tables:
            raise SchemaError(
                f"{label} was made by an older facegate, before schema migrations; "
                "enroll again into a new data directory"
            )
        revision = current(connection)
        if revision == head():
            return
        known = {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
        if revision is not None and revision not in known:
            raise SchemaError(
                f"{label} has schema revision {revision}, newer than this facegate knows "
                f"(newest: {head()}); upgrade facegate"
            )
        command.upgrade(alembic_config(connection), "head")
