"""The gettext catalogs: the .pot is what the code says (re-extracted here), every msgid has its
English and French translation (French differs but for a few brand names and symbols), plurals are
ngettext entries under each language's Plural-Forms, the catalogs ship with the package, a
language is one .po file, and one negotiation picks the language and formats of every reader."""

from __future__ import annotations

import re
import string
import tomllib

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from cards import catalogs
from cards.catalogs import is_key, negotiate, read_catalog
from cards.extract import POT, ROOT, extract
from cards.i18n import T, babel_locale, language
from cards.web_locale import page_locale

# msgids whose French is the English on purpose (the brand; a word French writes the same)
SAME_IN_FRENCH = {"app.name", "audit.system", "e-mail"}


def _ids(catalog: Catalog) -> set[tuple]:
    return {(m.context, m.id if isinstance(m.id, str) else tuple(m.id)) for m in catalog if m.id}


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _words(text: str) -> str:
    return re.sub(r"\{[^{}]*\}", "", text)


@pytest.fixture(scope="module")
def pot() -> Catalog:
    from babel.messages.pofile import read_po

    with POT.open("rb") as fh:
        return read_po(fh)


def test_the_pot_is_what_the_code_says(pot):
    extracted = _ids(extract())
    assert len(extracted) > 500
    missing, stale = extracted - _ids(pot), _ids(pot) - extracted
    assert not missing and not stale, (f"cards/locale/messages.pot is out of date (run python -m cards.extract): "
                                      f"new in the code {sorted(missing, key=str)[:10]}, "
                                      f"gone from the code {sorted(stale, key=str)[:10]}")


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_msgid_is_translated_and_no_translation_is_stale(pot, lang):
    catalog = read_catalog(lang)
    assert _ids(catalog) == _ids(pot), f"{lang}.po does not hold exactly the .pot's msgids"
    untranslated = [m.id for m in catalog if m.id and not all(m.string if m.pluralizable else [m.string])]
    assert not untranslated, f"{lang}.po entries without a translation: {untranslated[:10]}"
    wrong_forms = [m.id for m in catalog if m.pluralizable and len(m.string) != catalog.num_plurals]
    assert not wrong_forms, f"plural entries without {catalog.num_plurals} forms: {wrong_forms}"


def test_french_is_french_but_for_brand_names_and_symbols():
    en, fr = read_catalog("en"), read_catalog("fr")
    same = {m.id if isinstance(m.id, str) else m.id[0] for m in en
            if m.id and fr.get(m.id, context=m.context).string == m.string and re.search(r"[^\W\d_]", _words(
                m.string if isinstance(m.string, str) else " ".join(m.string)))}
    assert same == SAME_IN_FRENCH


def test_a_card_string_has_the_same_placeholders_in_every_language():
    en, fr = read_catalog("en"), read_catalog("fr")
    wrong = []
    for m in en:
        key = m.id if isinstance(m.id, str) else m.id[0]
        if not m.id or not is_key(key):
            continue
        forms = list(m.string) if m.pluralizable else [m.string]
        theirs = fr.get(m.id, context=m.context).string
        theirs = list(theirs) if m.pluralizable else [theirs]
        if set().union(*map(_fields, forms)) != set().union(*map(_fields, theirs)):
            wrong.append(key)
    assert not wrong, f"translations whose placeholders differ from the English: {wrong}"


def test_plurals_are_ngettext_entries_counted_by_a_placeholder():
    assert read_catalog("fr").plural_forms == "nplurals=2; plural=(n > 1);"
    assert read_catalog("en").plural_forms == "nplurals=2; plural=(n != 1);"
    counted = [m for m in read_catalog("en") if m.pluralizable and is_key(m.id[0])]
    assert len(counted) >= 28
    for m in counted:  # a card string's msgid_plural names the param that holds its count (shown or not)
        assert m.id[1].isidentifier() and _fields(" ".join(m.string)) <= _fields(m.string[-1]) | {m.id[1]}, m.id
    french = T("fr")
    assert [french.plural("users.selected", "n", n=n) for n in (0, 1, 2)] == [
        "0 utilisateur sélectionné", "1 utilisateur sélectionné", "2 utilisateurs sélectionnés"]
    with pytest.raises(KeyError):
        french.plural("users.selected", "total", total=2)  # not the count this string is about


def test_the_catalogs_ship_with_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["cards"]
    files = sorted(p.relative_to(ROOT / "cards") for p in (ROOT / "cards" / "locale").rglob("*.po*"))
    assert files and all(any(f.match(p) for p in patterns) for f in files), (files, patterns)


def test_a_language_is_one_po_file(tmp_path, monkeypatch):
    for lang in ("en", "fr", "de"):
        catalog = Catalog(locale=lang)
        catalog.add("btn.refresh", {"en": "Refresh", "fr": "Actualiser", "de": "Aktualisieren"}[lang])
        path = tmp_path / lang / "LC_MESSAGES" / "messages.po"
        path.parent.mkdir(parents=True)
        with path.open("wb") as fh:
            write_po(fh, catalog)
    monkeypatch.setattr(catalogs, "LOCALE_DIR", tmp_path)
    assert catalogs._languages() == ("en", "de", "fr")
    monkeypatch.setattr(catalogs, "SUPPORTED", catalogs._languages())
    catalogs._negotiate.cache_clear()
    try:
        assert str(negotiate("de-AT")) == "de_AT" and catalogs.entries(read_catalog("de"))[0] == {
            "btn.refresh": "Aktualisieren"}
    finally:
        catalogs._negotiate.cache_clear()


@pytest.mark.parametrize(("tags", "locale"), [
    (None, "en"), ("", "en"), ("fr-FR", "fr_FR"), ("fr_CA", "fr_CA"), ("FR-ca", "fr_CA"), ("fr", "fr"),
    ("fr-Latn-FR", "fr_FR"), ("fr-419", "fr"), ("fr-ZZ", "fr"), ("fr-FR-x-private", "fr"), ("de-DE", "en"),
    ("en-GB", "en_GB"), (["de", "fr-BE", "en"], "fr_BE"), (["*", "en-US", "fr"], "en_US"), ("fé", "en"),
])
def test_one_negotiation(tags, locale):
    assert str(negotiate(tags)) == locale


def test_every_reader_goes_through_the_one_negotiation():
    """Teams' locale (cards), the browser's Accept-Language (pay and export pages) and the rate-limit
    text all say what :func:`negotiate` says."""
    assert (language("fr-CA"), babel_locale("fr-CA"), babel_locale("fr"), babel_locale("xx")) == (
        "fr", "fr_CA", "fr_FR", "en_US")
    assert page_locale("de-DE, fr-CH;q=0.8") == "fr-CH" and page_locale("en-GB") == "en-US"
    from bot.ratelimit import slow_down_text

    assert slow_down_text("fr-CA")[0] == "Doucement" and slow_down_text("de-DE")[0] == "Slow down"
