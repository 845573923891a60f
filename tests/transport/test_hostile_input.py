"""Hostile text through the real forms and the Socket.IO test client, on both databases:
NUL, lone surrogates, invisible and look-alike names, byte limits, client_id per room,
guessable passwords."""

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Chat, Message, User

PT = {"Accept-Language": "pt-BR"}
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def events(sio, name):
    return [e["args"] for e in sio.get_received() if e["name"] == name]


# sign-up and login


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("username", {"username": "ali\x00ce"}),
        ("password", {"password": "correct\x00horse"}),
        ("email", {"email": "alice\x00@example.com"}),
        ("username", {"username": INVISIBLE}),
        ("username", {"username": "ali\u200bce"}),
        ("username", {"username": "alice\u202egnp"}),  # right-to-left override
    ],
)
def test_signup_with_nul_or_invisible_characters_is_a_400_next_to_the_field(
    app, client, accounts, field, overrides
):
    response = accounts.signup(client, **overrides)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page
    assert count(app, User) == 0


@pytest.mark.parametrize(
    ("username", "password"),
    [("ali\x00ce", "correct horse"), ("alice", "correct\x00horse"), ("\x00", "\x00")],
)
def test_login_with_nul_is_a_400_with_the_login_error(app, accounts, username, password):
    accounts.logged_in_client("alice")
    client = app.test_client()
    response = accounts.login(client, username=username, password=password)
    assert response.status_code == 400
    assert "cannot contain control characters" in response.get_data(as_text=True)


@pytest.mark.parametrize("look_alike", ["Alice", "ALICE", "ａｌｉｃｅ", "\u0430lice", "a1ice"])
def test_look_alikes_of_an_existing_username_are_taken(app, accounts, look_alike):
    accounts.logged_in_client("alice")
    response = accounts.signup(app.test_client(), username=look_alike, email="x@example.com")
    assert response.status_code == 400
    assert "That username is taken." in response.get_data(as_text=True)
    assert count(app, User) == 1


def test_mixing_scripts_in_a_new_username_is_refused(app, client, accounts):
    response = accounts.signup(client, username="p\u0430yp\u0430l")  # Cyrillic а
    assert response.status_code == 400
    assert "one alphabet" in response.get_data(as_text=True)
    assert count(app, User) == 0


def test_unicode_letters_make_a_username_and_log_in_in_any_case(app, accounts):
    client = app.test_client()
    assert accounts.signup(client, username="joão", email="joao@example.com").status_code == 303
    other = app.test_client()
    assert accounts.login(other, username="JOÃO").status_code == 303
    assert "joão" in other.get("/dashboard").get_data(as_text=True)


@pytest.mark.parametrize(
    "password", ["password", "12345678", "qwertyuiop", "alice-smith", "alice-smith1"]
)
def test_common_passwords_and_the_username_are_refused(app, client, accounts, password):
    response = accounts.signup(client, username="alice-smith", password=password)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="password-error"' in page and "too easy to guess" in page
    assert count(app, User) == 0


def test_the_guessable_password_message_is_translated(client, accounts):
    page = accounts.csrf(client, "/criar_conta")
    response = client.post(
        "/criar_conta_db",
        headers=PT,
        data={
            "csrf_token": page,
            "username": "alice",
            "password": "password",
            "email": "alice@example.com",
            "idade": "30",
        },
    )
    assert response.status_code == 400
    assert "fácil demais de adivinhar" in response.get_data(as_text=True)


@pytest.mark.parametrize("password", ["correct horse", "correct horse battery"])
def test_the_suites_passwords_are_strong_enough(client, accounts, password):
    assert accounts.signup(client, password=password).status_code == 303


# room names


@pytest.mark.parametrize(
    "name", ["gen\x00eral", INVISIBLE, "gen\u202eeral", "\u200bgeneral", "\u2066general\u2069"]
)
def test_room_names_with_nul_or_format_characters_are_a_400(app, accounts, name):
    client = accounts.logged_in_client()
    response = client.post(
        "/create_chat", data={"csrf_token": accounts.csrf(client, "/dashboard"), "chat_name": name}
    )
    assert response.status_code == 400
    assert 'id="chat_name-error"' in response.get_data(as_text=True)
    assert count(app, Chat) == 0


@pytest.mark.parametrize("look_alike", ["General", "ｇｅｎｅｒａｌ", "g\u0435neral", "genera1"])
def test_look_alikes_of_an_existing_room_name_exist_already(app, accounts, look_alike):
    client = accounts.logged_in_client()
    accounts.create_room(client, "general")
    response = client.post(
        "/create_chat",
        data={"csrf_token": accounts.csrf(client, "/dashboard"), "chat_name": look_alike},
    )
    assert response.status_code == 400
    assert "A room with that name exists already." in response.get_data(as_text=True)
    assert count(app, Chat) == 1


def test_room_names_are_stored_nfkc(app, accounts):
    client = accounts.logged_in_client()
    room_id = accounts.create_room(client, "ｃａｆé  com   pão")
    with app.app_context():
        assert db.session.get(Chat, room_id).name == "café com pão"


# messages


@pytest.fixture
def pair(accounts, socket_for):
    alice_http = accounts.logged_in_client("alice")
    room_id = accounts.create_room(alice_http, "general")
    bob_http = accounts.logged_in_client("bob")
    alice, bob = socket_for(alice_http), socket_for(bob_http)
    assert alice.emit("join", {"room": room_id}, callback=True)["ok"]
    assert bob.emit("join", {"room": room_id}, callback=True)["ok"]
    alice.get_received(), bob.get_received()
    return alice, bob, room_id, alice_http


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("nul \x00 inside", "bad_request"),
        ("\ud800", "bad_request"),
        ("broken \udfff pair", "bad_request"),
        ("escape \x1b[2J", "bad_request"),
        (INVISIBLE, "empty"),
        (" \u3164 \u2800 \ufe0f ", "empty"),
        ("😀" * 2001, "too_long"),  # 2,001 characters but 8,004 bytes
    ],
)
def test_hostile_messages_are_refused_and_store_nothing(app, pair, message, code):
    alice, bob, room_id, _ = pair
    ack = alice.emit("message", {"room": room_id, "message": message}, callback=True)
    assert ack["ok"] is False and ack["error"] == code and ack["detail"]
    assert events(bob, "message") == []
    assert count(app, Message) == 0


def test_the_byte_limit_says_bytes(pair):
    alice, _, room_id, _ = pair
    ack = alice.emit("message", {"room": room_id, "message": "😀" * 2001}, callback=True)
    assert ack["detail"] == "The message is 8004 bytes long; the limit is 8000 bytes " + (
        "(emoji and some alphabets take up to 4 bytes a character)."
    )


def test_four_thousand_accented_characters_pass_the_byte_limit(app, pair):
    alice, bob, room_id, _ = pair
    text = ("ação é pão " * 400)[:4000]
    ack = alice.emit("message", {"room": room_id, "message": text}, callback=True)
    assert ack["ok"], ack
    assert count(app, Message) == 1


def test_tabs_line_breaks_and_emoji_sequences_are_kept(app, pair):
    alice, bob, room_id, _ = pair
    text = "line one\n\tline two 👩\u200d💻"
    assert alice.emit("message", {"room": room_id, "message": text}, callback=True)["ok"]
    [received] = events(bob, "message")
    assert (received if isinstance(received, dict) else received[0])["message"] == text


def test_a_client_id_reused_in_another_room_stores_both_messages(app, accounts, pair):
    alice, bob, room_a, alice_http = pair
    room_b = accounts.create_room(alice_http, "random")
    assert alice.emit("join", {"room": room_b}, callback=True)["ok"]
    first = alice.emit(
        "message", {"room": room_a, "message": "in A", "client_id": "same-id"}, callback=True
    )
    second = alice.emit(
        "message", {"room": room_b, "message": "in B", "client_id": "same-id"}, callback=True
    )
    assert first["ok"] and second["ok"]
    assert second["id"] != first["id"] and (first["seq"], second["seq"]) == (1, 1)
    broadcasts = [m if isinstance(m, dict) else m[0] for m in events(alice, "message")]
    assert [(m["id"], m["room"]) for m in broadcasts] == [
        (first["id"], room_a),
        (second["id"], room_b),
    ]
    retry = alice.emit(
        "message", {"room": room_a, "message": "in A", "client_id": "same-id"}, callback=True
    )
    assert retry == first
    with app.app_context():
        rows = db.session.execute(select(Message.chat_id, Message.message)).all()
    assert sorted(rows) == sorted([(room_a, "in A"), (room_b, "in B")])
