"""staged ingest, renditions, verification job state, played seconds

Revision ID: 0003_ingest_pipeline
Revises: 0002_tokens_notifications
Create Date: 2026-12-02 10:14:21.249900

Columns only, and a unique index rather than a constraint, so SQLite adds them in place
(ALTER TABLE ADD COLUMN) instead of rebuilding `clips` under the rows that refer to it.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0003_ingest_pipeline"
down_revision = "0002_tokens_notifications"
branch_labels = None
depends_on = None

_CLIP_COLUMNS = (
    sa.Column("staging_key", sa.String(length=200), nullable=True),
    sa.Column("poster_size", sa.BigInteger(), nullable=True),
    sa.Column("poster_etag", sa.String(length=200), nullable=True),
    sa.Column("rendition_key", sa.String(length=200), nullable=True),
    sa.Column("rendition_size", sa.BigInteger(), nullable=True),
    sa.Column("rendition_sha256", sa.String(length=64), nullable=True),
    sa.Column("rendition_etag", sa.String(length=200), nullable=True),
    sa.Column("rendition_codec", sa.String(length=20), nullable=True),
    sa.Column("pipeline_step", sa.String(length=30), nullable=True),
    sa.Column("job_attempts", sa.Integer(), server_default="0", nullable=False),
    sa.Column("job_lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("job_error", sa.Text(), nullable=True),
    sa.Column("pixel_format", sa.String(length=32), nullable=True),
)


def upgrade():
    for column in _CLIP_COLUMNS:
        op.add_column("clips", column)
    op.create_index("ix_clips_staging_key", "clips", ["staging_key"], unique=True)
    op.add_column("decisions", sa.Column("played_seconds", sa.Float(), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+): a batch rebuild of `clips` would trip the share-link
    # trigger that names the table.
    op.drop_column("decisions", "played_seconds")
    op.drop_index("ix_clips_staging_key", table_name="clips")
    for column in reversed(_CLIP_COLUMNS):
        op.drop_column("clips", column.name)
