"""A partial index on the clips in review: the queue's counts and current claims read it

Revision ID: 0008_lease_index
Revises: 0007_provenance
Create Date: 2026-12-03 12:00:00.000000

Only clips in review are in it (a live or lapsed lease each), so it stays a handful of rows
however many clips wait. Without it, SQLite's planner, whose statistics say most rows share
one status, scanned the whole table for a reviewer's current claim and the in-review counts.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008_lease_index"
down_revision = "0007_provenance"
branch_labels = None
depends_on = None

IN_REVIEW = sa.text("status = 'in_review'")


def upgrade():
    op.create_index(
        "ix_clips_leases",
        "clips",
        ["claim_expires_at", "claimed_by_id"],
        unique=False,
        sqlite_where=IN_REVIEW,
        postgresql_where=IN_REVIEW,
    )


def downgrade():
    op.drop_index("ix_clips_leases", table_name="clips")
