"""Content Credentials: what each clip's C2PA manifest says, and a hold for `require`

Revision ID: 0007_provenance
Revises: 0006_review_room
Create Date: 2026-12-03 08:00:00.000000

Columns only, each with its own CHECK, so SQLite adds them in place (ALTER TABLE ADD COLUMN)
instead of rebuilding `clips`, which would drop the share-link trigger that names the table.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007_provenance"
down_revision = "0006_review_room"
branch_labels = None
depends_on = None

STATES = ("absent", "intact", "untrusted", "altered", "invalid", "refused")


_SIGNED_COLUMNS = (
    sa.Column("signed_key", sa.String(length=200), nullable=True),
    sa.Column("signed_size", sa.BigInteger(), nullable=True),
    sa.Column("signed_sha256", sa.String(length=64), nullable=True),
    sa.Column("signed_etag", sa.String(length=200), nullable=True),
)


def upgrade():
    op.add_column("clips", sa.Column("provenance", sa.Text(), nullable=True))
    known = ", ".join(f"'{state}'" for state in STATES)
    # Raw DDL: Alembic's add_column leaves a column's own CHECK out; both backends take this.
    op.execute(
        "ALTER TABLE clips ADD COLUMN provenance_state VARCHAR(16) "
        "CONSTRAINT ck_clips_provenance_state_known "
        f"CHECK (provenance_state IS NULL OR provenance_state IN ({known}))"
    )
    op.add_column(
        "clips",
        sa.Column("provenance_held", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index("ix_clips_provenance_state", "clips", ["provenance_state"], unique=False)
    # The approved copy signed with the deployment's key, which share links serve.
    for column in _SIGNED_COLUMNS:
        op.add_column("clips", column)
    # The public approval record looks copies up by their hash, for anyone who asks.
    op.create_index("ix_clips_signed_sha256", "clips", ["signed_sha256"], unique=False)


def downgrade():
    op.drop_index("ix_clips_signed_sha256", table_name="clips")
    for column in reversed(_SIGNED_COLUMNS):
        op.drop_column("clips", column.name)
    op.drop_index("ix_clips_provenance_state", table_name="clips")
    op.drop_column("clips", "provenance_held")
    op.drop_column("clips", "provenance_state")
    op.drop_column("clips", "provenance")
