"""List owners' workflow: people and their console sessions, intake items, independent grades,
and how many agreeing grades each list needs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types and vocabularies as they were at this revision.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
GRADES = "'A', 'B', 'C', 'A1', 'A2', 'B1', 'B2', 'none'"


def upgrade() -> None:
    with op.batch_alter_table("hash_lists") as batch:
        batch.add_column(
            sa.Column("required_grades", sa.Integer(), nullable=False, server_default="2")
        )
    op.create_table(
        "users",
        sa.Column("id", Id, nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("disabled_at", Timestamp, nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", Timestamp, nullable=True),
        sa.CheckConstraint("role IN ('analyst', 'senior', 'admin')", name=op.f("ck_users_role")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_users_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_index(op.f("ix_users_organisation_id"), "users", ["organisation_id"])
    op.create_table(
        "console_sessions",
        sa.Column("id", Id, nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_console_sessions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_console_sessions_token_sha256")),
    )
    op.create_index(op.f("ix_console_sessions_user_id"), "console_sessions", ["user_id"])
    op.create_table(
        "intake_items",
        sa.Column("id", Id, nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("list_id", Id, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
        sa.Column("sha1", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("pdq", sa.String(64), nullable=True),
        sa.Column("pdq_quality", sa.Integer(), nullable=True),
        sa.Column("media_name", sa.String(64), nullable=True),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("media_bytes", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("duplicate_of_id", Id, nullable=True),
        sa.Column("listed_entry_id", Id, nullable=True),
        sa.Column("required_grades", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.Column("grade", sa.String(4), nullable=True),
        sa.Column("age_band", sa.String(8), nullable=True),
        sa.Column("entry_ids", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'escalated', 'published', 'rejected', 'duplicate')",
            name=op.f("ck_intake_items_state"),
        ),
        sa.CheckConstraint(
            f"grade IS NULL OR grade IN ({GRADES})", name=op.f("ck_intake_items_grade")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_intake_items_organisation_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["hash_lists.id"], name=op.f("fk_intake_items_list_id_hash_lists")
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["intake_items.id"],
            name=op.f("fk_intake_items_duplicate_of_id_intake_items"),
        ),
        sa.ForeignKeyConstraint(
            ["listed_entry_id"],
            ["list_entries.id"],
            name=op.f("fk_intake_items_listed_entry_id_list_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_items")),
    )
    op.create_index(op.f("ix_intake_items_organisation_id"), "intake_items", ["organisation_id"])
    op.create_index(op.f("ix_intake_items_list_id"), "intake_items", ["list_id"])
    op.create_index(op.f("ix_intake_items_state"), "intake_items", ["state"])
    op.create_index(op.f("ix_intake_items_sha256"), "intake_items", ["sha256"])
    op.create_table(
        "assessments",
        sa.Column("id", Id, nullable=False),
        sa.Column("item_id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("grade", sa.String(4), nullable=False),
        sa.Column("age_band", sa.String(8), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint(f"grade IN ({GRADES})", name=op.f("ck_assessments_grade")),
        sa.ForeignKeyConstraint(
            ["item_id"], ["intake_items.id"], name=op.f("fk_assessments_item_id_intake_items")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_assessments_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
        sa.UniqueConstraint("item_id", "user_id", name=op.f("uq_assessments_item_id_user_id")),
    )
    op.create_index(op.f("ix_assessments_item_id"), "assessments", ["item_id"])
    op.create_index(op.f("ix_assessments_user_id"), "assessments", ["user_id"])


def downgrade() -> None:
    op.drop_table("assessments")
    op.drop_table("intake_items")
    op.drop_table("console_sessions")
    op.drop_table("users")
    with op.batch_alter_table("hash_lists") as batch:
        batch.drop_column("required_grades")
