"""An index on clips.rendition_sha256: verification looks refused bytes up by it

Revision ID: 0005_rendition_sha256_index
Revises: 0004_session_tokens
Create Date: 2026-12-03 07:00:00.000000

A playback copy's bytes are what reviewers and the public watched; once its clip is rejected or
taken down, an upload of those bytes is refused like the original's, and reviewers are shown an
earlier clip whose copy an upload matches. Both look the hash up on every verification.
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0005_rendition_sha256_index"
down_revision = "0004_session_tokens"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_clips_rendition_sha256", "clips", ["rendition_sha256"], unique=False)


def downgrade():
    op.drop_index("ix_clips_rendition_sha256", table_name="clips")
