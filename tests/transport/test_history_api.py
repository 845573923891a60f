import pytest


@pytest.fixture
def settings(settings):
    # the rooms here are filled with 130 messages from one socket: the message limits would
    # refuse that by design (tests/transport/test_rate_limits.py tests them)
    settings.limits.update({"message.connection": "off", "message.user": "off"})
    return settings


@pytest.fixture
def room_with_messages(accounts, socket_for):
    client = accounts.logged_in_client()
    room_id = accounts.create_room(client, "general")
    sio = socket_for(client)
    joined = sio.emit("join", {"room": room_id}, callback=True)
    assert sio.is_connected() and joined["ok"], joined
    for i in range(1, 131):
        ack = sio.emit("message", {"room": room_id, "message": f"m{i}"}, callback=True)
        assert ack and ack["ok"], (i, ack)
    return client, room_id


def test_history_walks_back_in_pages_oldest_first(room_with_messages):
    client, room_id = room_with_messages
    seqs, before = [], None
    while True:
        query = f"?limit=40&before={before}" if before else "?limit=40"
        page = client.get(f"/api/chats/{room_id}/messages{query}").get_json()
        batch = [m["seq"] for m in page["messages"]]
        assert batch == sorted(batch)
        seqs = batch + seqs
        if not page["more"]:
            assert page["next_before"] is None
            break
        before = page["next_before"]
    assert seqs == list(range(1, 131))


def test_history_messages_have_the_broadcast_shape(room_with_messages):
    client, room_id = room_with_messages
    message = client.get(f"/api/chats/{room_id}/messages?limit=1").get_json()["messages"][0]
    assert set(message) == {"id", "seq", "room", "username", "message", "created_at", "client_id"}
    assert message["room"] == room_id and message["username"] == "alice"
    assert message["message"] == "m130"


def test_without_a_limit_the_page_is_the_join_size(room_with_messages):
    client, room_id = room_with_messages
    page = client.get(f"/api/chats/{room_id}/messages").get_json()
    assert [m["seq"] for m in page["messages"]] == list(range(81, 131))


@pytest.mark.parametrize(
    "query",
    [
        "?limit=0",
        "?limit=101",
        "?limit=x",
        "?before=0",
        "?before=-3",
        "?before=1.5",
        "?before=%C2%B2",  # a superscript two: a digit to str.isdigit, not to int()
        "?before=99999999999999999999",
    ],
)
def test_bad_parameters_are_a_400_with_a_reason(room_with_messages, query):
    client, room_id = room_with_messages
    response = client.get(f"/api/chats/{room_id}/messages{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "bad_request" and body["detail"]


@pytest.mark.parametrize("room", ["999", "99999999999999999999"])
def test_unknown_room_is_a_404_json(accounts, room):
    client = accounts.logged_in_client()
    response = client.get(f"/api/chats/{room}/messages")
    assert response.status_code == 404
    assert response.get_json()["error"] in {"no_such_room", "not_found"}


def test_logged_out_is_a_401_json(client):
    response = client.get("/api/chats/1/messages")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
