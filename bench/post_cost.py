"""What storing a post costs: the old one-ORM-transaction-per-post path against the group
commit of app/rooms/commits.py, at batch sizes 1, 20 and 100, on SQLite and PostgreSQL.

    python bench/post_cost.py --posts 2000 --runs 3

One process, no gevent, no sockets: each cell stores `--posts` posts (64 characters, a
client_id each, spread over 10 rooms) and reports, per stored post, the CPU of this process
(µs; the median of `--runs`) and the wall time. Where the PostgreSQL server runs on this
machine and its backend is readable in /proc, the backend's CPU is reported too.
SQLite is a file in a temporary directory (WAL, synchronous=NORMAL, as the app sets it);
PostgreSQL is a private schema on the test database at 127.0.0.1, dropped afterwards.
"CPU db" is the PostgreSQL backends' CPU (read from /proc: the server must be local).

The durability table: wall time of one batch's COMMIT path on SQLite with
`PRAGMA synchronous=NORMAL` (the app's setting: WAL is synced at checkpoints) against
`synchronous=FULL` (the WAL synced at every commit), per batch and per post. The app's
pragma is not changed; the bench sets it on its own connection only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.accounts.service import register
from app.config import Settings
from app.db import execute_first_write, migrate_database
from app.extensions import db
from app.models import Chat, Message, utcnow
from app.rooms import service
from app.rooms.commits import NewPost, store_batch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import postgres_unreachable, private_postgres_schema  # noqa: E402

ROOMS = 10
TEXT = "x" * 64
BATCH_SIZES = (1, 20, 100)


def old_orm_post(user, room_id: int, text: str, client_id: str) -> Message:
    """The storage half of post_message before group commit (main at e658ead), verbatim."""
    earlier = db.session.scalar(
        select(Message).where(
            Message.user_id == user.id, Message.chat_id == room_id, Message.client_id == client_id
        )
    )
    if earlier is not None:
        return earlier
    now = utcnow()
    try:
        seq = execute_first_write(
            db.session,
            update(Chat)
            .where(Chat.id == room_id)
            .values(last_seq=Chat.last_seq + 1, last_activity_at=now)
            .returning(Chat.last_seq),
        ).scalar_one_or_none()
        message = Message(
            chat_id=room_id,
            seq=seq,
            user_id=user.id,
            username=user.username,
            message=text,
            client_id=client_id,
            created_at=now,
        )
        db.session.add(message)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise
    return message


def server_cpu_seconds(app_name: str | None) -> float | None:
    """CPU so far of the PostgreSQL backends of this bench (its `application_name`), when
    the server runs on this machine; a backend that started later counts from 0."""
    if app_name is None:
        return None
    with db.engine.connect() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %(name)s",
            {"name": app_name},
        ).scalars()
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Cell:
    def __init__(self):
        self.cpu: list[float] = []
        self.wall: list[float] = []
        self.server: list[float] = []

    def add(self, posts: int, cpu: float, wall: float, server: float | None) -> None:
        self.cpu.append(cpu / posts * 1e6)
        self.wall.append(wall / posts * 1e6)
        if server is not None:
            self.server.append(server / posts * 1e6)

    def row(self) -> str:
        server = f"{statistics.median(self.server):9.0f}" if self.server else "        -"
        return f"{statistics.median(self.cpu):9.0f} {server} {statistics.median(self.wall):9.0f}"


def measure_old(user, rooms: list[int], posts: int, app_name, cell: Cell) -> None:
    server0 = server_cpu_seconds(app_name)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for n in range(posts):
        old_orm_post(user, rooms[n % ROOMS], TEXT, uuid.uuid4().hex)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    server1 = server_cpu_seconds(app_name)
    cell.add(posts, cpu, wall, None if server0 is None else server1 - server0)


def measure_batches(user, rooms: list[int], posts: int, size: int, app_name, cell: Cell) -> None:
    batches = [
        [
            NewPost(user.id, user.username, rooms[(b * size + i) % ROOMS], TEXT, uuid.uuid4().hex)
            for i in range(size)
        ]
        for b in range(posts // size)
    ]
    server0 = server_cpu_seconds(app_name)
    with db.engine.connect() as conn:  # held across batches, as the committer holds one
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for batch in batches:
            store_batch(conn, batch)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    server1 = server_cpu_seconds(app_name)
    stored = len(batches) * size
    cell.add(stored, cpu, wall, None if server0 is None else server1 - server0)


def cost_table(name: str, database_url: str, tmp: Path, posts: int, runs: int) -> None:
    app_name = None
    if database_url:
        app_name = f"post_cost_{uuid.uuid4().hex[:8]}"
        database_url = (
            make_url(database_url)
            .update_query_dict({"application_name": app_name})
            .render_as_string(hide_password=False)
        )
    app = create_app(settings(database_url, tmp))
    migrate_database(app)
    with app.app_context():
        user = register(f"bench{uuid.uuid4().hex[:6]}", "correct horse", "b@example.com", 30)
        rooms = [
            service.create_room(user, f"bench {uuid.uuid4().hex[:8]}").id for _ in range(ROOMS)
        ]
        cells = {"old ORM, 1 per txn": Cell()} | {f"batch of {s}": Cell() for s in BATCH_SIZES}
        for _ in range(runs):  # interleaved, so drift of the box hits every cell alike
            measure_old(user, rooms, posts, app_name, cells["old ORM, 1 per txn"])
            for size in BATCH_SIZES:
                measure_batches(user, rooms, posts, size, app_name, cells[f"batch of {size}"])
        print(f"\n{name}: µs per stored post ({posts} posts x {runs} runs, median)")
        print(f"{'path':<22} {'CPU app':>9} {'CPU db':>9} {'wall':>9}")
        for label, cell in cells.items():
            print(f"{label:<22} {cell.row()}")
        if db.engine.dialect.name == "sqlite":
            durability_table(user, rooms, posts, runs)
        db.session.remove()
        db.engine.dispose()


def durability_table(user, rooms: list[int], posts: int, runs: int) -> None:
    print(f"\nSQLite WAL, synchronous NORMAL vs FULL: wall per batch ({posts} posts x {runs} runs)")
    print(f"{'batch':>6} {'NORMAL ms':>10} {'FULL ms':>10} {'FULL-NORMAL ms':>15} {'µs/post':>8}")
    for size in BATCH_SIZES:
        per_batch = {}
        for mode in ("NORMAL", "FULL"):
            cell = Cell()
            for _ in range(runs):
                with db.engine.connect() as conn:
                    conn.exec_driver_sql(f"PRAGMA synchronous={mode}")
                    conn.commit()
                    timed = Cell()
                    batches = [
                        [
                            NewPost(
                                user.id, user.username, rooms[i % ROOMS], TEXT, uuid.uuid4().hex
                            )
                            for i in range(size)
                        ]
                        for _ in range(posts // size)
                    ]
                    wall0 = time.perf_counter()
                    for batch in batches:
                        store_batch(conn, batch)
                    wall = time.perf_counter() - wall0
                    timed.add(len(batches), 0.0, wall, None)
                    cell.wall.append(timed.wall[0])
                    conn.exec_driver_sql("PRAGMA synchronous=NORMAL")  # back, for the pool
                    conn.commit()
            per_batch[mode] = statistics.median(cell.wall)  # µs per batch
        extra = (per_batch["FULL"] - per_batch["NORMAL"]) / size
        print(
            f"{size:>6} {per_batch['NORMAL'] / 1000:>10.3f} {per_batch['FULL'] / 1000:>10.3f}"
            f" {extra * size / 1000:>15.3f} {extra:>8.1f}"
        )


def settings(database_url: str, tmp: Path) -> Settings:
    return Settings(
        env="development",
        secret_key="bench-secret-key",  # noqa: S106 - a throwaway app in a temp dir
        instance_path=tmp / "instance",
        database_url=database_url,
        worker_id="bench",
        async_mode="threading",
        testing=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=2000, help="posts per cell and run (<= 20000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell (<= 10)")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    posts = max(100, min(args.posts, 20_000)) // 100 * 100
    runs = max(1, min(args.runs, 10))
    with tempfile.TemporaryDirectory(prefix="post-cost-") as tmp:
        cost_table("SQLite", "", Path(tmp), posts, runs)
    if args.no_postgres:
        return
    reason = postgres_unreachable()
    if reason:
        print(f"\nPostgreSQL: skipped ({reason})")
        return
    with (
        tempfile.TemporaryDirectory(prefix="post-cost-") as tmp,
        private_postgres_schema("b") as url,
    ):
        cost_table("PostgreSQL", url, Path(tmp), posts, runs)


if __name__ == "__main__":
    main()
