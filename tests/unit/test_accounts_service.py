from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, update

from app.accounts import service
from app.errors import InvalidInput, ServiceError
from app.extensions import db
from app.models import LoginFailure, User


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def count_users() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def test_register_stores_an_argon2id_hash_with_owasp_parameters(ctx):
    user = service.register("alice", "correct horse", "alice@example.com", "30")
    stored = db.session.get(User, user.id).password
    assert "correct horse" not in stored
    # $argon2id$v=19$m=19456,t=2,p=1$...
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(stored, "correct horse")


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("username", {"username": "ab"}),
        ("username", {"username": "x" * 33}),
        ("username", {"username": "bad name"}),
        ("username", {"username": "<script>"}),
        ("password", {"password": "short"}),
        ("password", {"password": "p" * 129}),
        ("email", {"email": "not-an-email"}),
        ("email", {"email": ""}),
        ("idade", {"idade": "twelve"}),
        ("idade", {"idade": "12"}),
        ("idade", {"idade": "121"}),
        ("idade", {"idade": "-5"}),
        ("idade", {"idade": "30.5"}),
        ("idade", {"idade": ""}),
    ],
)
def test_register_refuses_each_bad_field_and_stores_nothing(ctx, field, kwargs):
    values = {"username": "alice", "password": "correct horse", "email": "a@example.com"}
    values["idade"] = "30"
    values.update(kwargs)
    with pytest.raises(InvalidInput) as caught:
        service.register(**values)
    assert set(caught.value.fields) == {field}
    assert caught.value.fields[field]
    assert count_users() == 0


def test_usernames_are_unique_case_insensitively(ctx):
    service.register("Alice", "correct horse", "a@example.com", 30)
    with pytest.raises(InvalidInput) as caught:
        service.register("aLICE", "another pass", "b@example.com", 31)
    assert caught.value.fields == {"username": "That username is taken."}
    assert count_users() == 1


def test_authenticate_accepts_any_case_of_the_username(ctx):
    service.register("Alice", "correct horse", "a@example.com", 30)
    assert service.authenticate("alice", "correct horse").username == "Alice"


def test_authenticate_says_nothing_about_which_part_was_wrong(ctx):
    service.register("alice", "correct horse", "a@example.com", 30)
    assert service.authenticate("alice", "wrong password") is None
    assert service.authenticate("nobody", "correct horse") is None
    assert service.authenticate("", "") is None


def test_an_ended_session_no_longer_loads_its_user(ctx):
    user = service.register("alice", "correct horse", "a@example.com", 30)
    token = service.start_session(user)
    assert service.load_session_user(token).id == user.id
    service.end_session(token)
    assert service.load_session_user(token) is None


def test_repeated_failures_throttle_that_name_from_that_address(ctx, monkeypatch):
    service.register("alice", "correct horse", "a@example.com", 30)
    for _ in range(service.LOGIN_FAILURES_PER_NAME):
        assert service.authenticate("alice", "wrong guess", "10.0.0.1") is None
    # now even the right password is refused from there, with the wait in the message
    with pytest.raises(ServiceError) as caught:
        service.authenticate("alice", "correct horse", "10.0.0.1")
    assert caught.value.code == "too_many_attempts" and caught.value.status == 429
    assert "Try again in 15 minutes" in caught.value.detail
    # alice herself, elsewhere, is not locked out
    assert service.authenticate("alice", "correct horse", "10.0.0.2").username == "alice"


def test_one_address_trying_many_names_is_throttled(ctx):
    for i in range(service.LOGIN_FAILURES_PER_ADDRESS):
        assert service.authenticate(f"guess{i}", "whatever1", "10.0.0.9") is None
    with pytest.raises(ServiceError):
        service.authenticate("someone-new", "whatever1", "10.0.0.9")


def test_failures_leave_the_window_after_fifteen_minutes(ctx):
    service.register("alice", "correct horse", "a@example.com", 30)
    for _ in range(service.LOGIN_FAILURES_PER_NAME):
        service.authenticate("alice", "wrong guess", "10.0.0.1")
    db.session.execute(
        update(LoginFailure).values(
            at=LoginFailure.at - service.LOGIN_WINDOW - timedelta(seconds=1)
        )
    )
    db.session.commit()
    assert service.authenticate("alice", "correct horse", "10.0.0.1").username == "alice"


def test_a_successful_login_clears_that_names_failures(ctx):
    service.register("alice", "correct horse", "a@example.com", 30)
    for _ in range(service.LOGIN_FAILURES_PER_NAME - 1):
        service.authenticate("alice", "wrong guess", "10.0.0.1")
    assert service.authenticate("alice", "correct horse", "10.0.0.1")
    assert service.authenticate("alice", "wrong again", "10.0.0.1") is None
    assert service.authenticate("alice", "correct horse", "10.0.0.1")
