import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Chat


def room_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Chat))


@pytest.mark.parametrize("path", ["/dashboard", "/chat/1"])
def test_pages_redirect_to_login_when_logged_out(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/")


def test_create_chat_when_logged_out_goes_to_login_and_stores_nothing(app, client, accounts):
    response = client.post(
        "/create_chat", data={"csrf_token": accounts.csrf(client), "chat_name": "x"}
    )
    assert response.status_code == 302
    assert room_count(app) == 0


def test_create_room_then_it_is_on_the_dashboard(app, accounts):
    client = accounts.logged_in_client()
    room_id = accounts.create_room(client, "general")
    page = client.get("/dashboard").get_data(as_text=True)
    assert "general" in page
    assert f"/chat/{room_id}" in page


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give the room a name."), ("x" * 81, "at most 80 characters")],
)
def test_bad_room_names_rerender_the_dashboard(app, accounts, name, message):
    client = accounts.logged_in_client()
    response = client.post(
        "/create_chat", data={"csrf_token": accounts.csrf(client, "/dashboard"), "chat_name": name}
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert room_count(app) == 0


def test_dashboard_lists_rooms_by_most_recent_activity(app, accounts, socket_for):
    client = accounts.logged_in_client()
    older = accounts.create_room(client, "older")
    newer = accounts.create_room(client, "newer")
    sio = socket_for(client)
    sio.emit("join", {"room": older}, callback=True)
    sio.emit("message", {"room": older, "message": "bump"}, callback=True)
    page = client.get("/dashboard").get_data(as_text=True)
    assert page.index(f"/chat/{older}") < page.index(f"/chat/{newer}")


def test_room_page_shows_its_history_as_text(app, accounts, socket_for):
    client = accounts.logged_in_client()
    room_id = accounts.create_room(client, "general")
    sio = socket_for(client)
    sio.emit("join", {"room": room_id}, callback=True)
    sio.emit("message", {"room": room_id, "message": "<b>bold?</b>"}, callback=True)
    page = client.get(f"/chat/{room_id}").get_data(as_text=True)
    assert "&lt;b&gt;bold?&lt;/b&gt;" in page
    assert "<b>bold?</b>" not in page


def test_unknown_room_is_a_404_page(accounts):
    client = accounts.logged_in_client()
    response = client.get("/chat/999")
    assert response.status_code == 404
    assert "There is no room 999." in response.get_data(as_text=True)


def test_a_room_id_too_large_for_the_database_is_a_404_not_a_crash(accounts):
    client = accounts.logged_in_client()
    assert client.get("/chat/99999999999999999999").status_code == 404
