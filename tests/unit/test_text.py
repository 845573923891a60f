"""The character rules and name keys of app/text.py."""

import pytest

from app import text


@pytest.mark.parametrize(
    "value", ["a\x00b", "\ud800", "x\udfff", "bell\x07", "esc\x1b[31m", "c1\x85"]
)
def test_nul_lone_surrogates_and_controls_are_not_storable(value):
    assert not text.is_storable(value)
    assert not text.is_storable(value, multiline=True)


def test_messages_may_keep_tabs_and_line_breaks_names_may_not():
    assert text.is_storable("line one\nline two\r\n\tindented", multiline=True)
    assert not text.is_storable("two\nlines")


@pytest.mark.parametrize(
    "value", ["", " \t\n", "\u200b", "\u200b\u200c\u200d\u2060\ufeff", "\u202e\u202d", "\u3164"]
)
def test_invisible_only_text_is_blank(value):
    assert text.is_blank(value)


@pytest.mark.parametrize("value", ["a", "\u200bhi", "👍", "👩\u200d💻"])
def test_visible_text_is_not_blank(value):
    assert not text.is_blank(value)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("alice", "Alice"),
        ("alice", "ALICE"),
        ("alice", "ａｌｉｃｅ"),  # fullwidth
        ("alice", "\u0430lice"),  # Cyrillic а
        ("alice", "a1ice"),
        ("general", "ｇｅｎｅｒａｌ"),
        ("general", "g\u0435neral"),  # Cyrillic е
        ("modem", "rnodern"),
        ("strasse", "Straße"),
        ("joão", "JOÃO"),
        ("joão", "joa\u0303o"),  # decomposed tilde
    ],
)
def test_look_alikes_share_a_skeleton(one, other):
    assert text.skeleton(one) == text.skeleton(other)


@pytest.mark.parametrize(("one", "other"), [("alice", "alicia"), ("joão", "joao"), ("bob", "bop")])
def test_different_names_have_different_skeletons(one, other):
    assert text.skeleton(one) != text.skeleton(other)


def test_the_lookup_key_folds_case_and_width_but_not_look_alikes():
    assert text.lookup_key("ＡＬＩＣＥ") == text.lookup_key("Alice") == "alice"
    assert text.lookup_key("\u0430lice") != "alice"


@pytest.mark.parametrize(
    "name", ["alice", "joão", "José_da-Silva.2", "Ωμέγα", "日本語ユーザー", "김민준"]
)
def test_usernames_may_be_letters_of_one_script_digits_and_punctuation(name):
    assert text.username_problem(text.normalize_name(name)) is None


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("ab", "length"),
        ("x" * 33, "length"),
        ("bad name", "characters"),
        ("<script>", "characters"),
        ("smile😀", "characters"),
        ("\u0430lice", "scripts"),  # Cyrillic а among Latin letters
        ("pаypаl", "scripts"),
    ],
)
def test_bad_usernames_say_what_is_wrong(name, problem):
    assert text.username_problem(text.normalize_name(name)) == problem


def test_names_are_normalised_nfkc_with_single_spaces():
    assert text.normalize_name("  ｇｅｎｅｒａｌ \u00a0  chat ") == "general chat"
