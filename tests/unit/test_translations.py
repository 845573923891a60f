"""The catalogs: every user-visible string in the code and templates has a pt-BR translation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app.i18n import LANGUAGES, TRANSLATIONS_DIR, compile_catalogs, ensure_compiled

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")


def source_messages() -> set[str | tuple[str, ...]]:
    """What `make messages` extracts: the msgids the code and templates ask for right now."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
    return {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords
        )
    }


def catalog(locale: str):
    with (TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=locale)


TRANSLATED = [code for code in LANGUAGES if code != "en"]


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_string_in_the_sources_is_translated(locale):
    po = catalog(locale)
    missing = []
    for message in source_messages():
        msgid = message[0] if isinstance(message, tuple) else message
        entry = po.get(msgid)
        strings = entry and (entry.string if isinstance(entry.string, tuple) else (entry.string,))
        if not entry or entry.fuzzy or not all(strings):
            missing.append(msgid)
    assert missing == [], f"untranslated in {locale}: run `make messages` and translate these"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_translations_keep_every_placeholder(locale):
    for entry in catalog(locale):
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == wanted, entry.id


def test_catalogs_compile(tmp_path):
    written = compile_catalogs(TRANSLATIONS_DIR, tmp_path)
    assert {p.relative_to(tmp_path).parts[0] for p in written} == set(TRANSLATED)
    assert all(p.stat().st_size > 0 for p in written)


def test_missing_catalogs_are_built_at_start_next_to_their_sources(tmp_path):
    source = tmp_path / "translations"
    po = source / "pt_BR" / "LC_MESSAGES" / "messages.po"
    po.parent.mkdir(parents=True)
    po.write_bytes((TRANSLATIONS_DIR / "pt_BR" / "LC_MESSAGES" / "messages.po").read_bytes())
    assert ensure_compiled(source, tmp_path / "fallback") == source
    assert po.with_suffix(".mo").stat().st_size > 0
