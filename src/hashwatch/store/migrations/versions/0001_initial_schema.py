"""Initial schema: organisations, hash lists, entries (which carry the change feed), audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as they were at this revision.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("name", name=op.f("uq_organisations_name")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", Id, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("organisation_id", Id, nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("list_id", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_audit_log_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index(op.f("ix_audit_log_list_id"), "audit_log", ["list_id"])
    op.create_table(
        "hash_lists",
        sa.Column("id", Id, nullable=False),
        sa.Column("owner_id", Id, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["organisations.id"], name=op.f("fk_hash_lists_owner_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hash_lists")),
        sa.UniqueConstraint("owner_id", "name", name=op.f("uq_hash_lists_owner_id_name")),
    )
    op.create_table(
        "list_entries",
        sa.Column("id", Id, nullable=False),
        sa.Column("list_id", Id, nullable=False),
        sa.Column("signal_type", sa.String(32), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("category", sa.String(2), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("added_at", Timestamp, nullable=False),
        sa.Column("added_seq", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.Column("revoked_seq", sa.BigInteger(), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "category IS NULL OR category IN ('A', 'B', 'C', 'A1', 'A2', 'B1', 'B2')",
            name=op.f("ck_list_entries_category"),
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["hash_lists.id"], name=op.f("fk_list_entries_list_id_hash_lists")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_entries")),
        sa.UniqueConstraint(
            "list_id",
            "signal_type",
            "value",
            name=op.f("uq_list_entries_list_id_signal_type_value"),
        ),
        sa.UniqueConstraint("list_id", "added_seq", name=op.f("uq_list_entries_list_id_added_seq")),
    )
    op.create_index(
        "ix_list_entries_revoked_seq",
        "list_entries",
        ["list_id", "revoked_seq"],
        unique=True,
        sqlite_where=sa.text("revoked_seq IS NOT NULL"),
        postgresql_where=sa.text("revoked_seq IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("list_entries")
    op.drop_table("hash_lists")
    op.drop_table("audit_log")
    op.drop_table("organisations")
