"""users.session_token: part of every session and remember cookie, replaced to end them all

Revision ID: 0004_session_tokens
Revises: 0003_ingest_pipeline
Create Date: 2026-12-09 09:30:00.000000

Added in place (NOT NULL with an empty default, which SQLite's ALTER TABLE ADD COLUMN accepts)
rather than by a batch rebuild of `users` under the rows that refer to it. Every existing account
then gets its own random token, so sessions and remember cookies from before the upgrade (which
name only the user id) no longer sign anyone in: everyone signs in once more.
"""

import secrets

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0004_session_tokens"
down_revision = "0003_ingest_pipeline"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        "users",
        sa.Column("session_token", sa.String(length=64), server_default="", nullable=False),
    )
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("session_token", sa.String))
    connection = op.get_bind()
    for (user_id,) in connection.execute(sa.select(users.c.id)).all():
        connection.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(session_token=secrets.token_urlsafe(32))
        )


def downgrade():
    op.drop_column("users", "session_token")
