"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from hashwatch.store import Store, migrate
from hashwatch.store.database import alembic_config
from hashwatch.store.models import Base


def test_models_and_migrations_agree(store: Store) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_to_nothing_and_upgrade_again(store: Store) -> None:
    config = alembic_config(store.engine)
    command.downgrade(config, "base")
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    migrate(store.engine)
    assert {"organisations", "hash_lists", "list_entries", "audit_log"} <= set(
        inspect(store.engine).get_table_names()
    )
