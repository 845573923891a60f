"""What people may type: the character rules for names, passwords and messages, and the keys
names are compared by.

Every text field that reaches the database or a password hash goes through here first
(`app/accounts/service.py`, `app/rooms/service.py`):

- `is_storable`: no lone surrogates (UTF-8 cannot encode them: psycopg, SQLite's driver and
  argon2 fail on them) and no control characters (PostgreSQL refuses NUL in text). Messages
  may keep tab and line breaks.
- names (usernames, room names) are NFKC-normalised and may not hold format characters
  (zero-width characters, bidi overrides) or nothing but invisible ones.
- `lookup_key` (NFKC + casefold) is how a login finds its user; `skeleton` (UTS #39
  confusable skeleton of that key) is what must be unique, so "аlice" (Cyrillic а),
  "ａｌｉｃｅ" and "Alice" are all taken once "alice" is.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from importlib import resources

from confusable_homoglyphs import categories

# control characters (Unicode category Cc) and surrogates (Cs); messages keep tab, LF and CR
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSTORABLE_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# shown as nothing though not white space: fillers, blank patterns, variation selectors
_INVISIBLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))
)
# usernames: letters, combining marks, digits and _ . - (checked after NFKC)
_USERNAME_PUNCTUATION = frozenset("_.-")
USERNAME_MIN, USERNAME_MAX = 3, 32
# scripts that are written together: a name may mix these, but no others
_SCRIPT_FAMILIES = ({"HAN", "HIRAGANA", "KATAKANA"}, {"HAN", "HANGUL"})
_NEUTRAL_SCRIPTS = {"COMMON", "INHERITED"}
# the longest confusable expansion the skeleton applies ("m" -> "rn")
_EXPANSION_MAX = 3


def is_storable(text: str, *, multiline: bool = False) -> bool:
    """Whether `text` can be stored and hashed: no lone surrogate, no control character.

    `multiline` keeps tab, CR and LF (messages); names and passwords allow none.
    """
    pattern = _UNSTORABLE_MULTILINE if multiline else _UNSTORABLE
    return pattern.search(text) is None


def is_invisible(char: str) -> bool:
    """White space, format characters (zero-width, bidi controls) and blank look-alikes."""
    return char.isspace() or unicodedata.category(char) == "Cf" or char in _INVISIBLE


def is_blank(text: str) -> bool:
    """True when nothing of `text` would show: empty, spaces, zero-width characters..."""
    return all(is_invisible(char) for char in text)


def has_format_characters(text: str) -> bool:
    """Zero-width characters, bidi overrides and the like (Unicode category Cf)."""
    return any(unicodedata.category(char) == "Cf" for char in text)


def normalize_name(text: str) -> str:
    """A name as stored and shown: NFKC, white space runs made one space, ends trimmed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def lookup_key(name: str) -> str:
    """The key a name is found by (login): NFKC, then case-folded ("Alice" -> "alice")."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def skeleton(name: str) -> str:
    """The key names must differ by: `lookup_key`, then each character replaced by the
    representative of its UTS #39 confusable class (data shipped by confusable-homoglyphs).

    "аlice" (Cyrillic а), "ａｌｉｃｅ" and "ALICE" have the skeleton of "alice"; "rn" and
    "m" share one too. At most `_EXPANSION_MAX` times as long as the lookup key.
    """
    table = _confusable_table()
    decomposed = unicodedata.normalize("NFD", lookup_key(name))
    mapped = "".join(table.get(char, char) for char in decomposed)
    return unicodedata.normalize("NFD", mapped)


def username_problem(name: str) -> str | None:
    """Why `name` (already normalised) cannot be a username: a short reason code, or None.

    "length", "characters" (something other than letters, digits, _ . -) or "scripts"
    (letters of several scripts mixed, the trick behind look-alike names).
    """
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        return "length"
    for char in name:
        category = unicodedata.category(char)
        if not (category[0] in "LM" or category == "Nd" or char in _USERNAME_PUNCTUATION):
            return "characters"
    scripts = {categories.alias(char) for char in name} - _NEUTRAL_SCRIPTS
    if len(scripts) > 1 and not any(scripts <= family for family in _SCRIPT_FAMILIES):
        return "scripts"
    return None


def utf8_length(text: str) -> int:
    """Bytes of `text` in UTF-8 (`text` must be storable)."""
    return len(text.encode("utf-8"))


_CONTROL_RE = re.compile(r"[\u200e\u200f]")


@functools.cache
def _confusable_table() -> dict[str, str]:
    """Each character with look-alikes -> one representative of its class.

    confusable-homoglyphs ships Unicode's confusables.txt as an undirected list of pairs;
    the classes are its connected components, each represented by its lowest code point
    (so ASCII letters represent their look-alikes). A character whose look-alike is a short
    sequence ("m" ~ "rn") maps to that sequence's representatives.
    """
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    parent: dict[str, str] = {}

    def find(char: str) -> str:
        while parent.get(char, char) != char:
            parent[char] = parent.get(parent[char], parent[char])
            char = parent[char]
        return char

    chars: set[str] = set()
    expansions: dict[str, str] = {}
    for key, alikes in data.items():
        key = _CONTROL_RE.sub("", key)
        for alike in alikes:
            other = _CONTROL_RE.sub("", alike["c"])
            if len(key) == 1 and len(other) == 1:
                chars.update((key, other))
                first, second = sorted((find(key), find(other)))
                if first != second:
                    parent[second] = first
            elif len(key) == 1 and 1 < len(other) <= _EXPANSION_MAX:
                chars.add(key)
                expansions.setdefault(key, other)
    # a class with a look-alike sequence expands, every member alike
    class_expansions: dict[str, str] = {}
    for char, sequence in sorted(expansions.items()):
        class_expansions.setdefault(find(char), "".join(find(part) for part in sequence))
    table = {char: class_expansions.get(find(char), find(char)) for char in chars}
    return {char: target for char, target in table.items() if char != target}
