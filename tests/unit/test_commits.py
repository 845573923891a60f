"""The group commit of posts (app/rooms/commits.py), one batch at a time, on each backend."""

from __future__ import annotations

import gevent
import gevent.event
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app.accounts.service import register
from app.extensions import db
from app.models import Chat, Message
from app.rooms import commits, service
from app.rooms.commits import Committer, NewPost, Posted, RoomMissing, store_batch

LIMIT = 4000


@pytest.fixture
def alice(app):
    with app.app_context():
        yield register("alice", "correct horse", "alice@example.com", 30)


@pytest.fixture
def rooms(alice):
    return [service.create_room(alice, name).id for name in ("one", "two", "three")]


def post(alice, room_id: int, text: str, client_id: str | None = None) -> NewPost:
    return NewPost(alice.id, alice.username, room_id, text, client_id)


def run_batch(posts: list[NewPost]) -> list:
    with db.engine.connect() as conn:
        return store_batch(conn, posts)


def stored(room_id: int) -> list[tuple[int, str]]:
    db.session.expire_all()
    rows = db.session.execute(
        select(Message.seq, Message.message).where(Message.chat_id == room_id).order_by(Message.seq)
    )
    return [tuple(row) for row in rows]


def last_seq(room_id: int) -> int:
    db.session.expire_all()
    return db.session.get(Chat, room_id).last_seq


def test_one_batch_over_several_rooms_numbers_each_room_gap_free_in_queue_order(alice, rooms):
    posts = [post(alice, rooms[i % 3], f"m{i}") for i in range(30)]
    outcomes = run_batch(posts)
    assert all(isinstance(o, Posted) and o.created for o in outcomes)
    for room_id in rooms:
        mine = [o.message for o in outcomes if o.message.chat_id == room_id]
        assert [m.seq for m in mine] == list(range(1, 11))
        assert stored(room_id) == [(m.seq, m.message) for m in mine]
        assert last_seq(room_id) == 10
    assert len({o.message.id for o in outcomes}) == 30
    # the next batch goes on where this one stopped
    again = run_batch([post(alice, rooms[0], "next")])
    assert again[0].message.seq == 11


def test_the_light_message_has_the_orm_messages_wire_shape(alice, rooms):
    (outcome,) = run_batch([post(alice, rooms[0], "hello", "c-1")])
    db.session.expire_all()
    orm = db.session.get(Message, outcome.message.id)
    assert outcome.message.to_wire() == orm.to_wire()


def test_a_client_id_twice_in_one_batch_is_stored_once_and_both_get_it(alice, rooms):
    outcomes = run_batch(
        [
            post(alice, rooms[0], "a"),
            post(alice, rooms[0], "hello", "c-1"),
            post(alice, rooms[0], "hello", "c-1"),
            post(alice, rooms[0], "b"),
        ]
    )
    first, second = outcomes[1], outcomes[2]
    assert first.created and not second.created
    assert second.message == first.message
    assert stored(rooms[0]) == [(1, "a"), (2, "hello"), (3, "b")]


def test_a_client_id_stored_by_an_earlier_batch_is_handed_back(alice, rooms):
    (first,) = run_batch([post(alice, rooms[0], "hello", "c-1")])
    outcomes = run_batch([post(alice, rooms[0], "hello", "c-1"), post(alice, rooms[0], "b")])
    assert not outcomes[0].created and outcomes[0].message == first.message
    assert outcomes[1].created and outcomes[1].message.seq == 2
    assert last_seq(rooms[0]) == 2


def test_the_same_client_id_in_another_room_is_another_message(alice, rooms):
    outcomes = run_batch([post(alice, rooms[0], "x", "c-1"), post(alice, rooms[1], "x", "c-1")])
    assert all(o.created for o in outcomes)
    assert outcomes[0].message.id != outcomes[1].message.id


def test_a_missing_room_fails_only_its_own_posts(alice, rooms):
    outcomes = run_batch(
        [post(alice, rooms[0], "a"), post(alice, 999_999, "lost"), post(alice, rooms[0], "b")]
    )
    assert isinstance(outcomes[1], RoomMissing) and outcomes[1].room_id == 999_999
    assert [o.message.seq for o in (outcomes[0], outcomes[2])] == [1, 2]
    assert stored(rooms[0]) == [(1, "a"), (2, "b")]


def test_a_unique_conflict_redoes_the_batch_one_by_one_and_only_the_loser_gets_the_row(
    alice, rooms, monkeypatch
):
    (winner,) = run_batch([post(alice, rooms[0], "hello", "c-1")])
    # another worker stored c-1 after this batch looked: the look-up misses it once
    real_find = commits._find_stored
    calls = []

    def stale_once(conn, posts, *rest):
        calls.append(len(posts))
        return {} if len(calls) == 1 else real_find(conn, posts)

    monkeypatch.setattr(commits, "_find_stored", stale_once)
    outcomes = run_batch(
        [
            post(alice, rooms[0], "a"),
            post(alice, rooms[1], "elsewhere"),
            post(alice, rooms[0], "hello", "c-1"),
            post(alice, rooms[0], "b"),
        ]
    )
    assert len(calls) > 1  # the batch was redone
    assert [o.created for o in outcomes] == [True, True, False, True]
    assert outcomes[2].message == winner.message
    assert stored(rooms[0]) == [(1, "hello"), (2, "a"), (3, "b")]
    assert stored(rooms[1]) == [(1, "elsewhere")]


def test_an_unexpected_database_error_fails_the_whole_batch_and_stores_nothing(
    alice, rooms, monkeypatch
):
    def broken(conn, posts, *rest):
        raise OperationalError("SELECT", {}, RuntimeError("the disk went away"))

    monkeypatch.setattr(commits, "_store_together", broken)
    outcomes = run_batch([post(alice, rooms[0], "a"), post(alice, rooms[1], "b")])
    assert all(isinstance(o, OperationalError) for o in outcomes)
    assert stored(rooms[0]) == [] and last_seq(rooms[0]) == 0


def test_post_message_turns_a_failed_batch_into_an_exception(alice, rooms, monkeypatch):
    monkeypatch.setattr(commits, "_store_together", lambda conn, posts: 1 / 0)
    with pytest.raises(commits.NotStored):
        service.post_message(alice, rooms[0], "a", max_length=LIMIT)


class Author:
    """What the realtime fast path passes: a record with an id and a name, no ORM."""

    def __init__(self, user):
        self.id, self.username = user.id, user.username


def test_post_message_takes_any_author_with_an_id_and_a_username(app, alice, rooms):
    author = Author(alice)
    with app.app_context():  # an app context and no request context
        posted = service.post_message(author, rooms[0], "hi", "c-9", max_length=LIMIT)
        again = service.post_message(author, rooms[0], "hi", "c-9", max_length=LIMIT)
    assert posted.created and posted.message.username == "alice"
    assert not again.created and again.message.id == posted.message.id


def test_the_committer_answers_every_waiter_from_one_batch(app, alice, rooms, monkeypatch):
    sizes = []
    real_store = commits.store_batch

    def counting(conn, posts, *rest):
        sizes.append(len(posts))
        return real_store(conn, posts, *rest)

    monkeypatch.setattr(commits, "store_batch", counting)
    committer = Committer(enabled=True, max_batch=8)
    engine = db.engine
    posts = [post(alice, rooms[i % 15 % 2], f"m{i}", f"c-{i % 15}") for i in range(20)]
    jobs = [gevent.spawn(committer.submit, engine, p) for p in posts]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    committer.stop()
    outcomes = [job.value for job in jobs]
    assert all(isinstance(o, Posted) for o in outcomes)
    assert sizes == [8, 8, 4]  # everything queued, at most max_batch at a time
    # c-0 .. c-4 came twice: stored once, the second caller got the first's message
    assert sum(o.created for o in outcomes) == 15
    for i in range(15, 20):
        assert outcomes[i].message == outcomes[i - 15].message
    for room_id in rooms[:2]:
        seqs = [seq for seq, _ in stored(room_id)]
        assert seqs == list(range(1, len(seqs) + 1))
    assert db.session.scalar(select(func.count()).select_from(Message)) == 15


def test_a_killed_committer_still_answers_its_batch(app, alice, rooms, monkeypatch):
    taken = gevent.event.Event()

    def hang(conn, posts, *rest):
        taken.set()
        gevent.sleep(60)

    monkeypatch.setattr(commits, "store_batch", hang)
    committer = Committer(enabled=True)
    job = gevent.spawn(committer.submit, db.engine, post(alice, rooms[0], "a"))
    assert taken.wait(timeout=10)
    committer.stop()
    outcome = job.get(timeout=10)
    assert isinstance(outcome, commits.NotStored)
    # the next post starts a new committer
    monkeypatch.undo()
    again = gevent.spawn(committer.submit, db.engine, post(alice, rooms[0], "b"))
    assert again.get(timeout=10).message.seq == 1
    committer.stop()


def test_retries_are_recognised_by_user_room_and_client_id_together(alice, rooms):
    bob = register("bob", "correct horse", "bob@example.com", 30)
    first = run_batch(
        [post(alice, rooms[0], "a", "c-1"), post(bob, rooms[0], "b", "c-1")]
        + [post(alice, rooms[1], "c", "c-1"), post(bob, rooms[1], "d", "c-2")]
    )
    assert all(o.created for o in first)
    again = run_batch(
        [post(bob, rooms[1], "d", "c-2"), post(alice, rooms[0], "a", "c-1")]
        + [post(bob, rooms[1], "e", "c-1"), post(alice, rooms[1], "c", "c-1")]
    )
    assert [o.created for o in again] == [False, False, True, False]
    assert again[0].message == first[3].message
    assert again[1].message == first[0].message
    assert again[3].message == first[2].message


def test_an_acked_sqlite_post_is_fsynced_by_a_commit_off_the_gevent_hub(
    app, alice, rooms, monkeypatch
):
    # synchronous=FULL: SQLite fsyncs the WAL at every commit, so an acked post survives a
    # power loss; the committer runs that COMMIT in an OS thread, so a worker's other
    # greenlets (every socket it serves) keep running while the disk works
    import threading

    from app.offload import CpuPool

    sqlite = db.engine.dialect.name == "sqlite"
    if sqlite:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    threads = []
    real_run = CpuPool.run

    def spying(self, fn, *args):
        def recorded(*inner):
            threads.append(threading.get_ident())
            return fn(*inner)

        return real_run(self, recorded, *args)

    monkeypatch.setattr(CpuPool, "run", spying)
    committer = Committer(enabled=True)
    jobs = [
        gevent.spawn(committer.submit, db.engine, post(alice, rooms[0], f"m{i}")) for i in range(5)
    ]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    committer.stop()
    assert all(isinstance(job.value, Posted) and job.value.created for job in jobs)
    assert [seq for seq, _ in stored(rooms[0])] == [1, 2, 3, 4, 5]
    if sqlite:
        assert threads and threading.get_ident() not in threads
    else:
        assert threads == []  # psycopg waits for PostgreSQL's fsync without blocking the hub
