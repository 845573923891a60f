"""Languages: chosen from Accept-Language or the remembered switcher, in pages, errors and acks."""

import pytest

from app.extensions import socketio

PT = {"Accept-Language": "pt-BR,pt;q=0.9,en;q=0.5"}


@pytest.mark.parametrize(
    ("accept", "lang", "title"),
    [
        ("pt-BR,pt;q=0.9", "pt-BR", "Entrar"),
        ("pt-PT", "pt-BR", "Entrar"),  # the only Portuguese there is
        ("en-GB,en;q=0.8", "en", "Log in"),
        ("de-DE", "en", "Log in"),  # nothing matching: English
        (None, "en", "Log in"),
    ],
)
def test_the_language_follows_accept_language(client, accept, lang, title):
    headers = {"Accept-Language": accept} if accept else {}
    page = client.get("/", headers=headers).get_data(as_text=True)
    assert f'<html lang="{lang}">' in page
    assert f"<title>{title} · flask-chat</title>" in page


def test_the_switcher_is_remembered_and_wins_over_accept_language(client, accounts):
    response = client.post(
        "/lang",
        data={"csrf_token": accounts.csrf(client), "locale": "pt_BR", "next": "/criar_conta"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/criar_conta"
    assert "lang=pt_BR" in response.headers["Set-Cookie"]
    page = client.get("/criar_conta", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="pt-BR">' in page and "Criar uma conta" in page


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_the_switcher_only_goes_back_to_this_site(client, accounts, target):
    response = client.post(
        "/lang", data={"csrf_token": accounts.csrf(client), "locale": "en", "next": target}
    )
    assert response.headers["Location"] == "/"


def test_the_switcher_ignores_unknown_languages(client, accounts):
    response = client.post(
        "/lang", data={"csrf_token": accounts.csrf(client), "locale": "xx", "next": "/"}
    )
    assert "Set-Cookie" not in response.headers or "lang=" not in response.headers["Set-Cookie"]


def test_form_errors_from_the_service_are_translated(client, accounts):
    response = client.post(
        "/criar_conta_db",
        headers=PT,
        data={
            "csrf_token": accounts.csrf(client, "/criar_conta"),
            "username": "x",
            "password": "short",
            "email": "nope",
            "idade": "7",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "O nome de usuário deve ter de 3 a 32 caracteres" in page
    assert "A senha deve ter de 8 a 128 caracteres." in page
    assert "Informe um e-mail válido" in page
    assert "A idade deve ser um número inteiro de 13 a 120." in page


def test_error_pages_and_api_errors_are_translated(client, accounts):
    page = client.get("/nowhere", headers=PT)
    assert page.status_code == 404 and "Não encontrado" in page.get_data(as_text=True)
    api = client.get("/api/chats/1/messages", headers=PT)
    assert api.status_code == 401 and api.get_json()["detail"] == "Entre para usar a API."


def test_socket_error_details_follow_the_connections_language(app, accounts):
    http = accounts.logged_in_client("alice")
    room = accounts.create_room(http, "geral")
    http.set_cookie("lang", "pt_BR")
    sio = socketio.test_client(app, flask_test_client=http)
    try:
        ack = sio.emit("message", {"room": room, "message": "oi"}, callback=True)
        assert ack["error"] == "not_member"
        assert ack["detail"] == f"Entre na sala {room} antes de enviar mensagens nela."
        sio.emit("join", {"room": room}, callback=True)
        ack = sio.emit("message", {"room": room, "message": "x" * 4001}, callback=True)
        assert ack["detail"] == "A mensagem tem 4001 caracteres; o limite é 4000."
    finally:
        sio.disconnect()
    # the same user in English, through Accept-Language on the handshake
    http.delete_cookie("lang")
    sio = socketio.test_client(app, flask_test_client=http, headers={"Accept-Language": "en"})
    try:
        ack = sio.emit("message", {"room": room, "message": "hi"}, callback=True)
        assert ack["detail"] == f"Join room {room} before posting to it."
    finally:
        sio.disconnect()
