import json

import pytest
from sqlalchemy import func, select

from app.accounts.service import register
from app.errors import InvalidInput, NotFound, ServiceError
from app.extensions import db
from app.models import Chat, Message
from app.rooms import service

LIMIT = 4000
MAX_BYTES = 256 * 1024


@pytest.fixture
def alice(app):
    with app.app_context():
        yield register("alice", "correct horse", "alice@example.com", 30)


@pytest.fixture
def room(alice):
    return service.create_room(alice, "general")


def stored_messages() -> int:
    return db.session.scalar(select(func.count()).select_from(Message))


def test_messages_get_unique_ids_and_consecutive_seqs(alice, room):
    posted = [service.post_message(alice, room.id, f"m{i}", max_length=LIMIT) for i in range(5)]
    assert [p.message.seq for p in posted] == [1, 2, 3, 4, 5]
    assert len({p.message.id for p in posted}) == 5
    assert db.session.get(Chat, room.id).last_seq == 5


def test_seqs_are_counted_per_room(alice, room):
    other = service.create_room(alice, "random")
    service.post_message(alice, room.id, "a", max_length=LIMIT)
    assert service.post_message(alice, other.id, "b", max_length=LIMIT).message.seq == 1
    assert service.post_message(alice, room.id, "c", max_length=LIMIT).message.seq == 2


def test_same_client_id_is_stored_once(alice, room):
    first = service.post_message(alice, room.id, "hello", "c-1", max_length=LIMIT)
    again = service.post_message(alice, room.id, "hello", "c-1", max_length=LIMIT)
    assert first.created and not again.created
    assert again.message.id == first.message.id
    assert stored_messages() == 1
    assert db.session.get(Chat, room.id).last_seq == 1


@pytest.mark.parametrize(
    ("text", "client_id", "code"),
    [
        ("", None, "empty"),
        ("   \n\t", None, "empty"),
        ("x" * (LIMIT + 1), None, "too_long"),
        (None, None, "bad_request"),
        (42, None, "bad_request"),
        ("hi", 7, "bad_request"),
        ("hi", "has spaces", "bad_request"),
        ("hi", "x" * 65, "bad_request"),
    ],
)
def test_refused_messages_store_nothing(alice, room, text, client_id, code):
    with pytest.raises(ServiceError) as caught:
        service.post_message(alice, room.id, text, client_id, max_length=LIMIT)
    assert caught.value.code == code
    assert stored_messages() == 0
    assert db.session.get(Chat, room.id).last_seq == 0


def test_a_message_of_exactly_the_limit_is_stored(alice, room):
    assert service.post_message(alice, room.id, "x" * LIMIT, max_length=LIMIT).created


def test_posting_to_a_missing_room_is_no_such_room_and_uses_no_seq(alice):
    with pytest.raises(NotFound) as caught:
        service.post_message(alice, 999, "hello", max_length=LIMIT)
    assert caught.value.code == "no_such_room"
    assert stored_messages() == 0


def test_history_pages_walk_back_without_gaps_or_repeats(alice, room):
    for i in range(1, 13):
        service.post_message(alice, room.id, f"m{i}", max_length=LIMIT)
    seen, before = [], None
    while True:
        page = service.history_before(room.id, before, 5, max_bytes=MAX_BYTES)
        seen = [m.seq for m in page.messages] + seen
        if not page.more:
            break
        before = page.messages[0].seq
    assert seen == list(range(1, 13))


def test_messages_since_is_capped_and_says_so(alice, room):
    for i in range(7):
        service.post_message(alice, room.id, f"m{i}", max_length=LIMIT)
    page = service.messages_since(room.id, 2, 3, max_bytes=MAX_BYTES)
    assert [m.seq for m in page.messages] == [3, 4, 5]
    assert page.more
    rest = service.messages_since(room.id, 5, 3, max_bytes=MAX_BYTES)
    assert [m.seq for m in rest.messages] == [6, 7]
    assert not rest.more


def wire_bytes(messages) -> int:
    return len(
        json.dumps(
            [m.to_wire() for m in messages], separators=(",", ":"), ensure_ascii=False
        ).encode()
    )


# 1,000 four-byte characters: 4,000 bytes of UTF-8 each, about 4.2 KB of wire JSON
BIG = "\U0001f600" * 1000


@pytest.fixture
def big_room(alice, room):
    for i in range(30):
        service.post_message(alice, room.id, f"{i} {BIG}", max_length=LIMIT)
    return room


def test_catch_up_is_capped_by_bytes_and_pages_through_every_message_once(big_room):
    seen, since, pages = [], 0, 0
    while True:
        page = service.messages_since(big_room.id, since, 500, max_bytes=20_000)
        assert 1 <= len(page.messages) < 30
        assert wire_bytes(page.messages) <= 20_000
        seen += [m.seq for m in page.messages]
        pages += 1
        if not page.more:
            break
        since = page.messages[-1].seq
    assert seen == list(range(1, 31))
    assert pages >= 30 * 4_200 // 20_000


def test_history_is_capped_by_bytes_and_pages_back_through_every_message_once(big_room):
    seen, before = [], None
    while True:
        page = service.history_before(big_room.id, before, 100, max_bytes=20_000)
        assert len(page.messages) >= 1 and wire_bytes(page.messages) <= 20_000
        seen = [m.seq for m in page.messages] + seen
        if not page.more:
            break
        before = page.messages[0].seq
    assert seen == list(range(1, 31))


def test_the_newest_messages_fit_the_byte_cap_and_say_more(big_room):
    page = service.recent_messages(big_room.id, 50, max_bytes=20_000)
    assert page.more
    assert [m.seq for m in page.messages] == list(range(31 - len(page.messages), 31))
    assert wire_bytes(page.messages) <= 20_000


def test_a_message_larger_than_the_byte_cap_still_goes_alone(big_room):
    for page in (
        service.messages_since(big_room.id, 0, 500, max_bytes=1_000),
        service.history_before(big_room.id, None, 500, max_bytes=1_000),
    ):
        assert len(page.messages) == 1 and page.more


def test_the_count_cap_still_applies_under_the_byte_cap(big_room):
    page = service.messages_since(big_room.id, 0, 3, max_bytes=10**7)
    assert [m.seq for m in page.messages] == [1, 2, 3] and page.more
    page = service.messages_since(big_room.id, 27, 3, max_bytes=10**7)
    assert [m.seq for m in page.messages] == [28, 29, 30] and not page.more


@pytest.mark.parametrize("name", ["", "   ", "x" * 81])
def test_bad_room_names_are_refused(alice, name):
    with pytest.raises(InvalidInput) as caught:
        service.create_room(alice, name)
    assert "chat_name" in caught.value.fields
    assert db.session.scalar(select(func.count()).select_from(Chat)) == 0


def test_room_names_are_unique_case_insensitively(alice, room):
    with pytest.raises(InvalidInput):
        service.create_room(alice, "GENERAL")


def test_rooms_are_listed_most_recent_activity_first(alice, room):
    quiet = service.create_room(alice, "quiet")
    service.post_message(alice, room.id, "bump", max_length=LIMIT)
    assert [r.id for r in service.list_rooms()] == [room.id, quiet.id]


@pytest.mark.parametrize("value", [1, "1", " 7 "])
def test_room_ids_may_be_numbers_or_digit_strings(value):
    assert service.parse_room_id(value) == int(str(value).strip())


@pytest.mark.parametrize(
    "value", [None, 0, -1, "x", "1.5", "²", "٣", True, 1.0, [1], {"id": 1}, 2**31, "9" * 30]
)
def test_other_room_ids_are_bad_requests(value):
    with pytest.raises(ServiceError) as caught:
        service.parse_room_id(value)
    assert caught.value.code == "bad_request"
