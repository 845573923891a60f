"""Unicode name keys (lookup key + confusable skeleton), client_id unique per room

Revision ID: 0003
Revises: 0002

- users.username_key becomes NFKC + casefold (what login looks a name up by), widened;
  users.username_skeleton (new, unique) and chats.name_key hold confusable skeletons
  (app/text.py), so look-alike names count as taken.
- messages: a client_id is unique per (user, room), no longer per user.

Existing rows get their keys recomputed. Two existing rows whose new keys collide (say the
rooms "general" and "ｇｅｎｅｒａｌ", both accepted before) both stay: the older row (lowest
id) keeps the plain key, each later one gets "<key>#<id>". "#" cannot occur in a username
and a room key with it matches no new name, so nothing is lost, every old login still
works, and new look-alikes of the older name are refused.

SQLite: the users and chats tables are not rebuilt (other tables point at them, and with
foreign keys on a rebuild would cascade): the new column is added in place and its
uniqueness is a unique index; SQLite ignores VARCHAR lengths, so nothing is widened there.
"""

import sqlalchemy as sa
from alembic import op

from app.text import lookup_key, skeleton

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

users = sa.table(
    "users",
    sa.column("id", sa.Integer),
    sa.column("username", sa.String),
    sa.column("username_key", sa.String),
    sa.column("username_skeleton", sa.String),
)
chats = sa.table(
    "chats", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("name_key", sa.String)
)


def upgrade():
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.add_column(
        "users",
        sa.Column("username_skeleton", sa.String(length=300), nullable=False, server_default=""),
    )
    if postgres:
        op.alter_column("users", "username_skeleton", server_default=None)
        op.alter_column("users", "username_key", type_=sa.String(length=128))
        op.alter_column("chats", "name_key", type_=sa.String(length=720))

    user_rows = bind.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    _rekey(bind, users, users.c.username_key, user_rows, lookup_key)
    _rekey(bind, users, users.c.username_skeleton, user_rows, skeleton)
    op.create_index("uq_users_username_skeleton", "users", ["username_skeleton"], unique=True)

    chat_rows = bind.execute(sa.select(chats.c.id, chats.c.name).order_by(chats.c.id)).all()
    _rekey(bind, chats, chats.c.name_key, chat_rows, skeleton)

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_messages_user_client_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_messages_user_chat_client_id", ["user_id", "chat_id", "client_id"]
        )


def downgrade():
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint("uq_messages_user_chat_client_id", type_="unique")
        batch_op.create_unique_constraint("uq_messages_user_client_id", ["user_id", "client_id"])
    op.drop_index("uq_users_username_skeleton", table_name="users")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.drop_column("users", "username_skeleton")
    else:
        with op.batch_alter_table("users", schema=None, recreate="never") as batch_op:
            batch_op.drop_column("username_skeleton")
    # the old keys: lower-cased, as 0001 made them (a duplicate gets its id appended)
    user_rows = bind.execute(sa.select(users.c.id, users.c.username).order_by(users.c.id)).all()
    _rekey(bind, users, users.c.username_key, user_rows, str.lower)
    chat_rows = bind.execute(sa.select(chats.c.id, chats.c.name).order_by(chats.c.id)).all()
    _rekey(bind, chats, chats.c.name_key, chat_rows, str.lower)


def _rekey(bind, table, column, rows, make_key):
    """Set `column` to make_key(name) for each (id, name) row, suffixing collisions."""
    # first a placeholder unique to each row, so no new key collides with an old one
    for row_id, _name in rows:
        bind.execute(sa.update(table).where(table.c.id == row_id).values({column.name: f"#{row_id}"}))
    seen = set()
    for row_id, name in rows:
        key = make_key(name)
        if key in seen:
            key = f"{key}#{row_id}"
        seen.add(key)
        bind.execute(sa.update(table).where(table.c.id == row_id).values({column.name: key}))
