"""The PDQ quality of a match event's content and of each exception taken from it, so that a
false positive on near-blank content (a low-quality PDQ hash) excepts only that exact hash, not
everything near it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("match_events") as batch:
        batch.add_column(sa.Column("pdq_quality", sa.Integer(), nullable=True))
    with op.batch_alter_table("match_exceptions") as batch:
        batch.add_column(sa.Column("quality", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("match_exceptions") as batch:
        batch.drop_column("quality")
    with op.batch_alter_table("match_events") as batch:
        batch.drop_column("pdq_quality")
