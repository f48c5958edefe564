"""The review room: timecoded comment threads, rejections that cite them, reopened verdicts,
dismissed failed uploads

Revision ID: 0006_review_room
Revises: 0005_rendition_sha256_index
Create Date: 2026-12-03 07:00:00.000000

A reopened decision stays on record (`reopened_at`), so the rule "one verdict per reviewer and
clip" becomes a partial unique index over the standing ones.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006_review_room"
down_revision = "0005_rendition_sha256_index"
branch_labels = None
depends_on = None

STANDING = sa.text("reopened_at IS NULL")


def upgrade():
    # decisions first: on SQLite dropping its unique constraint rebuilds the table, which is
    # simplest while no other table refers to it yet.
    op.add_column("decisions", sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_decisions_clip_reviewer", type_="unique")
    op.create_index(
        "uq_decisions_clip_reviewer_standing",
        "decisions",
        ["clip_id", "reviewer_id"],
        unique=True,
        sqlite_where=STANDING,
        postgresql_where=STANDING,
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clip_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=True),
        sa.Column("at_seconds", sa.Float(), nullable=True),
        sa.Column("until_seconds", sa.Float(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "at_seconds IS NULL OR at_seconds >= 0",
            name=op.f("ck_comments_comment_at_not_negative"),
        ),
        sa.CheckConstraint(
            "until_seconds IS NULL OR (at_seconds IS NOT NULL AND until_seconds > at_seconds)",
            name=op.f("ck_comments_comment_range_ordered"),
        ),
        sa.CheckConstraint(
            "thread_id IS NULL OR (at_seconds IS NULL AND until_seconds IS NULL)",
            name=op.f("ck_comments_reply_has_no_time"),
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_comments_author_id_users")
        ),
        sa.ForeignKeyConstraint(["clip_id"], ["clips.id"], name=op.f("fk_comments_clip_id_clips")),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["comments.id"], name=op.f("fk_comments_thread_id_comments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    op.create_index("ix_comments_clip_thread", "comments", ["clip_id", "id"], unique=False)
    op.create_index(op.f("ix_comments_thread_id"), "comments", ["thread_id"], unique=False)
    op.create_table(
        "decision_comments",
        sa.Column("decision_id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"], ["comments.id"], name=op.f("fk_decision_comments_comment_id_comments")
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
            name=op.f("fk_decision_comments_decision_id_decisions"),
        ),
        sa.PrimaryKeyConstraint("decision_id", "comment_id", name=op.f("pk_decision_comments")),
    )
    op.add_column("clips", sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # The old rule allows one verdict per reviewer and clip ever: undone verdicts cannot stay.
    op.execute(
        "DELETE FROM decision_comments WHERE decision_id IN "
        "(SELECT id FROM decisions WHERE reopened_at IS NOT NULL)"
    )
    op.execute("DELETE FROM decisions WHERE reopened_at IS NOT NULL")
    op.drop_index("uq_decisions_clip_reviewer_standing", table_name="decisions")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_decisions_clip_reviewer", ["clip_id", "reviewer_id"])
    op.drop_column("decisions", "reopened_at")
    op.drop_column("clips", "dismissed_at")
    op.drop_table("decision_comments")
    op.drop_index(op.f("ix_comments_thread_id"), table_name="comments")
    op.drop_index("ix_comments_clip_thread", table_name="comments")
    op.drop_table("comments")
