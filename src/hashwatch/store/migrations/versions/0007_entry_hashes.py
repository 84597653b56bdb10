"""Entry hashes: extra PDQ hashes of a listed image kept with its entry (crops, its trimmed form,
tilts), and each list's choice of which ones it makes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("list_entries") as batch:
        # NULL for the entries already listed: they were listed as hashes alone.
        batch.add_column(sa.Column("extra_hashes", sa.JSON(none_as_null=True), nullable=True))
    with op.batch_alter_table("hash_lists") as batch:
        # Existing lists take the default design; it applies to images listed from now on.
        batch.add_column(
            sa.Column("entry_hashes", sa.String(16), nullable=False, server_default="crops")
        )


def downgrade() -> None:
    with op.batch_alter_table("hash_lists") as batch:
        batch.drop_column("entry_hashes")
    with op.batch_alter_table("list_entries") as batch:
        batch.drop_column("extra_hashes")
