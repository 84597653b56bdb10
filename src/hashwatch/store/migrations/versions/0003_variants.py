"""Detection quality: which query variants (rotations and flips, trimmed borders) each list
matches.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("hash_lists") as batch:
        # Existing lists take the default: both kinds of variant on.
        batch.add_column(
            sa.Column("variants", sa.JSON(), nullable=False, server_default='["dihedral", "trim"]')
        )


def downgrade() -> None:
    with op.batch_alter_table("hash_lists") as batch:
        batch.drop_column("variants")
