import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from app.accounts import service
from app.errors import InvalidInput
from app.extensions import db
from app.models import User


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
