"""The service: API keys, list grants between organisations, and local copies of remote lists.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as they were at this revision.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", Id, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_api_keys_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_index(op.f("ix_api_keys_organisation_id"), "api_keys", ["organisation_id"])
    op.create_table(
        "list_grants",
        sa.Column("id", Id, nullable=False),
        sa.Column("list_id", Id, nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("access", sa.String(8), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.CheckConstraint("access IN ('match', 'read')", name=op.f("ck_list_grants_access")),
        sa.ForeignKeyConstraint(
            ["list_id"], ["hash_lists.id"], name=op.f("fk_list_grants_list_id_hash_lists")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_list_grants_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_grants")),
        sa.UniqueConstraint(
            "list_id", "organisation_id", name=op.f("uq_list_grants_list_id_organisation_id")
        ),
    )
    op.create_index(op.f("ix_list_grants_list_id"), "list_grants", ["list_id"])
    op.create_index(op.f("ix_list_grants_organisation_id"), "list_grants", ["organisation_id"])
    with op.batch_alter_table("hash_lists") as batch:
        batch.add_column(sa.Column("origin_url", sa.String(500), nullable=True))
        batch.add_column(sa.Column("origin_list_id", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("origin_cursor", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("hash_lists") as batch:
        batch.drop_column("origin_cursor")
        batch.drop_column("origin_list_id")
        batch.drop_column("origin_url")
    op.drop_table("list_grants")
    op.drop_table("api_keys")
