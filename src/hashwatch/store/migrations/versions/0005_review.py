"""Platforms' workflow: match events grouped into review jobs, exceptions after false positives,
disputes for list owners, threshold overrides, webhooks and their deliveries, report submissions,
and each organisation's evidence and preservation settings.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as they were at this revision.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    with op.batch_alter_table("organisations") as batch:
        batch.add_column(
            sa.Column("retain_evidence", sa.Boolean(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("preserve_days", sa.Integer(), nullable=False, server_default="365")
        )
        batch.add_column(
            sa.Column("unconfirmed_days", sa.Integer(), nullable=False, server_default="90")
        )
    op.create_table(
        "review_jobs",
        sa.Column("id", Id, nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("user_ref", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("classification", sa.String(2), nullable=True),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("viewed", sa.Boolean(), nullable=False),
        sa.Column("preserve_until", Timestamp, nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'confirmed', 'false_positive')", name=op.f("ck_review_jobs_state")
        ),
        sa.CheckConstraint(
            "classification IS NULL OR classification IN ('A1', 'A2', 'B1', 'B2')",
            name=op.f("ck_review_jobs_classification"),
        ),
        _fk("review_jobs", "organisation_id", "organisations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_jobs")),
    )
    op.create_index(
        "ix_review_jobs_queue",
        "review_jobs",
        ["organisation_id", "state", "severity", "created_at"],
    )
    op.create_table(
        "match_events",
        sa.Column("id", Id, nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("job_id", Id, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("content_id", sa.String(200), nullable=False),
        sa.Column("user_ref", sa.String(200), nullable=False),
        sa.Column("uploaded_at", Timestamp, nullable=True),
        sa.Column("ip_address", sa.String(64), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("hashes", sa.JSON(), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("media_name", sa.String(64), nullable=True),
        sa.Column("media_type", sa.String(64), nullable=True),
        _fk("match_events", "organisation_id", "organisations"),
        _fk("match_events", "job_id", "review_jobs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_events")),
    )
    op.create_index(op.f("ix_match_events_organisation_id"), "match_events", ["organisation_id"])
    op.create_index(op.f("ix_match_events_job_id"), "match_events", ["job_id"])
    op.create_index(op.f("ix_match_events_created_at"), "match_events", ["created_at"])
    op.create_table(
        "match_exceptions",
        sa.Column("id", Id, nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("signal_type", sa.String(32), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("job_id", Id, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _fk("match_exceptions", "organisation_id", "organisations"),
        _fk("match_exceptions", "job_id", "review_jobs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_exceptions")),
        sa.UniqueConstraint(
            "organisation_id",
            "signal_type",
            "value",
            name=op.f("uq_match_exceptions_organisation_id_signal_type_value"),
        ),
    )
    op.create_table(
        "entry_disputes",
        sa.Column("id", Id, nullable=False),
        sa.Column("entry_id", Id, nullable=False),
        sa.Column("list_id", Id, nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("job_id", Id, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        _fk("entry_disputes", "entry_id", "list_entries"),
        _fk("entry_disputes", "list_id", "hash_lists"),
        _fk("entry_disputes", "organisation_id", "organisations"),
        _fk("entry_disputes", "job_id", "review_jobs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry_disputes")),
        sa.UniqueConstraint(
            "entry_id",
            "organisation_id",
            "job_id",
            name=op.f("uq_entry_disputes_entry_id_organisation_id_job_id"),
        ),
    )
    op.create_index(op.f("ix_entry_disputes_entry_id"), "entry_disputes", ["entry_id"])
    op.create_index(op.f("ix_entry_disputes_list_id"), "entry_disputes", ["list_id"])
    op.create_table(
        "threshold_overrides",
        sa.Column("id", Id, nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("list_id", Id, nullable=False),
        sa.Column("signal_type", sa.String(32), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        _fk("threshold_overrides", "organisation_id", "organisations"),
        _fk("threshold_overrides", "list_id", "hash_lists"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threshold_overrides")),
        sa.UniqueConstraint(
            "organisation_id",
            "list_id",
            "signal_type",
            name=op.f("uq_threshold_overrides_organisation_id_list_id_signal_type"),
        ),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", Id, nullable=False),
        sa.Column("organisation_id", Id, nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret_salt", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("disabled_at", Timestamp, nullable=True),
        _fk("webhooks", "organisation_id", "organisations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_index(op.f("ix_webhooks_organisation_id"), "webhooks", ["organisation_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", Id, nullable=False),
        sa.Column("webhook_id", Id, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=True),
        sa.Column("delivered_at", Timestamp, nullable=True),
        sa.Column("failed_at", Timestamp, nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _fk("webhook_deliveries", "webhook_id", "webhooks"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(op.f("ix_webhook_deliveries_webhook_id"), "webhook_deliveries", ["webhook_id"])
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["delivered_at", "next_attempt_at"]
    )
    op.create_table(
        "report_submissions",
        sa.Column("id", Id, nullable=False),
        sa.Column("job_id", Id, nullable=False),
        sa.Column("base_url", sa.String(500), nullable=False),
        sa.Column("remote_id", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _fk("report_submissions", "job_id", "review_jobs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_submissions")),
    )
    op.create_index(op.f("ix_report_submissions_job_id"), "report_submissions", ["job_id"])


def downgrade() -> None:
    for table in (
        "report_submissions",
        "webhook_deliveries",
        "webhooks",
        "threshold_overrides",
        "entry_disputes",
        "match_exceptions",
        "match_events",
        "review_jobs",
    ):
        op.drop_table(table)
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("unconfirmed_days")
        batch.drop_column("preserve_days")
        batch.drop_column("retain_evidence")
