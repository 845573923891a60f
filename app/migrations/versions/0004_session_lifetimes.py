"""login sessions: only a hash of the token, last use, browser; indexes for pruning

Revision ID: 0004
Revises: 0002

The token column becomes `token_hash` (SHA-256, hex) for every existing row, so users who
are logged in stay logged in: their cookie's token hashes to the new key.
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "login_sessions_new",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_login_sessions_token_hash"),
    )
    conn = op.get_bind()
    old = sa.table(
        "login_sessions",
        sa.column("token", sa.String),
        sa.column("user_id", sa.Integer),
        sa.column("created_at", sa.DateTime),
    )
    new = sa.table(
        "login_sessions_new",
        sa.column("token_hash", sa.String),
        sa.column("user_id", sa.Integer),
        sa.column("created_at", sa.DateTime),
        sa.column("last_seen_at", sa.DateTime),
        sa.column("user_agent", sa.String),
    )
    rows = [
        {
            "token_hash": hashlib.sha256(token.encode()).hexdigest(),
            "user_id": user_id,
            "created_at": created_at,
            "last_seen_at": created_at,
            "user_agent": "",
        }
        for token, user_id, created_at in conn.execute(
            sa.select(old.c.token, old.c.user_id, old.c.created_at)
        )
    ]
    if rows:
        conn.execute(new.insert(), rows)
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_login_sessions_user_id")
    op.drop_table("login_sessions")
    op.rename_table("login_sessions_new", "login_sessions")
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_login_sessions_user_id", ["user_id"], unique=False)
        batch_op.create_index("ix_login_sessions_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_login_sessions_last_seen_at", ["last_seen_at"], unique=False)


def downgrade():
    # tokens cannot be recovered from their hashes: every session ends
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_login_sessions_last_seen_at")
        batch_op.drop_index("ix_login_sessions_created_at")
        batch_op.drop_index("ix_login_sessions_user_id")
    op.drop_table("login_sessions")
    op.create_table(
        "login_sessions",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token"),
    )
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_login_sessions_user_id", ["user_id"], unique=False)
