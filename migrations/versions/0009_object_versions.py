"""The S3 VersionIds of each clip's files, recorded when they are first served

Revision ID: 0009_object_versions
Revises: 0008_lease_index
Create Date: 2026-12-03 12:00:00.000000

One nullable column, so SQLite adds it in place (ALTER TABLE ADD COLUMN) instead of rebuilding
`clips`, which would drop the share-link trigger that names the table.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009_object_versions"
down_revision = "0008_lease_index"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("clips", sa.Column("object_versions", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("clips", "object_versions")
