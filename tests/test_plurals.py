"""Counts said with their word in agreement, by the plural rules of the reader's language (CLDR
via Babel: French says 0 and 1 in the singular, English only 1), never "user(s)": every string
about a count is a cards.i18n.Plural (ngettext's msgid / msgid_plural) and every core message
about one a Message.counted. The suite-wide check that no card of a journey shows "(s)" is in
the ``desk`` fixture (tests/conftest.py)."""

from __future__ import annotations

import dataclasses
import string

import pytest

from cards import assign, audit, mylicense, pool_admin, purchase, requests, upgrade  # noqa: F401 - (their strings)
from cards.common import error_card
from cards.i18n import STRINGS, Plural, T
from core.errors import Message, SeatsAssigned, no_longer_held, plural_index
from dialogs.base import Turn
from dialogs.router import Router
from tests.harness import heading_of, text_of

SINGULAR = {"en": {1}, "fr": {0, 1}}  # of 0, 1, 2: the counts each language says in the singular
PLURAL_KEYS = sorted(key for key, value in STRINGS["en"].items() if isinstance(value, Plural))


def test_the_plural_rules_are_cldr_ones():
    assert [plural_index("en", n) for n in (0, 1, 2, 1_000_000)] == [1, 0, 1, 1]
    assert [plural_index("fr", n) for n in (0, 1, 2, 1_000_000)] == [0, 0, 1, 1]  # (CLDR "many": the plural)


def test_the_catalogs_hold_every_counted_string_as_a_plural():
    assert len(PLURAL_KEYS) >= 28
    assert not [k for lang in ("en", "fr") for k, v in STRINGS[lang].items()
                if not isinstance(v, Plural) and "(s)" in v]


@pytest.mark.parametrize("key", PLURAL_KEYS)
@pytest.mark.parametrize("lang", ["en", "fr"])
def test_each_counted_string_takes_the_form_of_its_count(key, lang):
    entry = STRINGS[lang][key]
    params = {name: "X" for form in (entry.one, entry.other) for _, name, _, _ in string.Formatter().parse(form)
              if name}
    t = T(lang)
    for n in (0, 1, 2):
        said = t(key, **{**params, entry.count: n})
        expected = (entry.one if n in SINGULAR[lang] else entry.other).format(**{**params, entry.count: n})
        assert said == expected and "(s)" not in said, (key, lang, n, said)


# ---------------------------------------------------------------------------- on the cards

def _pool(lic, actor, plan: str, interval: str = "month"):
    return next(p for p in lic.pools.list_pools(actor) if (p.plan_code, p.interval) == (plan, interval))


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_users_and_tiers_cards_count_the_selection(demo, admin, lang):
    router = Router(demo)
    eco = _pool(demo, admin, "eco")
    users = demo.pools.pool_users(admin, eco.id, page_size=3).items
    expected = {"en": ["1 user selected", "2 users selected"], "fr": ["1 utilisateur sélectionné",
                                                                      "2 utilisateurs sélectionnés"]}[lang]
    tiers = {"en": ["Upgrade 1 user from Eco", "Upgrade 2 users from Eco"],
             "fr": ["Mettre à niveau 1 utilisateur depuis Eco", "Mettre à niveau 2 utilisateurs depuis Eco"]}[lang]
    for n in (1, 2):
        sel = [u.id for u in users[:n]]
        card = upgrade.pool_users_card(lang, eco, demo.pools.pool_users(admin, eco.id), sel)
        assert expected[n - 1] in text_of(card) and "(s)" not in text_of(card)
        card = router.on_action(Turn(admin, lang), "upgrade.tiers", {"pool": eco.id, "sel": sel})
        assert heading_of(card) == tiers[n - 1], text_of(card)
    count = {"en": "Eco (monthly): 24 users", "fr": "Eco (mensuel)\u00a0: 24 utilisateurs"}[lang]
    assert heading_of(upgrade.pool_users_card(lang, eco, demo.pools.pool_users(admin, eco.id), [])) == count


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_unassigned_card_counts_users_and_free_seats(demo, admin, lang):
    eco = _pool(demo, admin, "eco")
    expected = {
        "en": ["They have been told in Teams. 0 seats of Eco (monthly) are free now.",
               "They have been told in Teams. 1 seat of Eco (monthly) is free now.",
               "Each of them has been told in Teams. 2 seats of Eco (monthly) are free now."],
        "fr": ["Cette personne a été prévenue dans Teams. 0 licence d'Eco (mensuel) est maintenant libre.",
               "Cette personne a été prévenue dans Teams. 1 licence d'Eco (mensuel) est maintenant libre.",
               "Chacun a été prévenu dans Teams. 2 licences d'Eco (mensuel) sont maintenant libres."]}[lang]
    headings = {"en": ["1 user unassigned", "1 user unassigned", "2 users unassigned"],
                "fr": ["Licence retirée à 1 utilisateur", "Licence retirée à 1 utilisateur",
                       "Licence retirée à 2 utilisateurs"]}[lang]
    for free in (0, 1, 2):
        pool = dataclasses.replace(eco, assigned=eco.quantity - eco.removal_scheduled - free)
        assert pool.assignable == free
        card = pool_admin.unassign_done(lang, pool, max(free, 1))
        assert heading_of(card) == headings[free] and expected[free] in text_of(card), text_of(card)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_seats_left_refusal_counts_them(demo, admin, lang):
    """Eco: 30 bought, 24 assigned, so 6 free; remove seats until 2, 1 and 0 are left, then ask one more."""
    eco = _pool(demo, admin, "eco")
    expected = {"en": {2: "Only 2 seats of this pool are free.", 1: "Only 1 seat of this pool is free.",
                       0: "Only 0 seats of this pool are free."},
                "fr": {2: "Ce lot n'a que 2 licences libres.", 1: "Ce lot n'a que 1 licence libre.",
                       0: "Ce lot n'a que 0 licence libre."}}[lang]
    demo.seats.remove_seats(admin, eco.id, 4)
    for free in (2, 1, 0):
        with pytest.raises(SeatsAssigned) as refused:
            demo.seats.remove_seats(admin, eco.id, free + 1)
        assert expected[free] in text_of(error_card(lang, refused.value.message))
        if free:
            demo.seats.remove_seats(admin, eco.id, 1)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_stale_selection_refusal_agrees_with_its_count(demo, admin, lang):
    """Users who lost their seat meanwhile: "1 of the selected users no longer holds", "2 ... hold"."""
    router = Router(demo)
    eco = _pool(demo, admin, "eco")
    advanced = _pool(demo, admin, "advanced")
    strangers = [u.id for u in demo.pools.pool_users(admin, advanced.id, page_size=2).items]
    expected = {"en": ["1 of the selected users no longer holds a seat in this pool.",
                       "2 of the selected users no longer hold a seat in this pool."],
                "fr": ["1 des utilisateurs sélectionnés n'a plus de licence dans ce lot.",
                       "2 des utilisateurs sélectionnés n'ont plus de licence dans ce lot."]}[lang]
    for n in (1, 2):
        card = router.on_action(Turn(admin, lang), "upgrade.quote", {"pool": eco.id, "sel": strangers[:n],
                                                                     "plan": "pro"})
        assert expected[n - 1] in text_of(card), text_of(card)
        assert expected[n - 1] in T(lang).say(no_longer_held(n))
    assert T("fr").say(no_longer_held(0)).startswith("0 des utilisateurs sélectionnés n'a plus")


def test_a_counted_message_keeps_both_forms_through_pickle_and_json():
    import json
    import pickle

    m = Message.counted("{n} seat is free", "{n} seats are free", "n", n=1)
    for again in (pickle.loads(pickle.dumps(m)),  # noqa: S301 - (our own bytes)
                  Message.from_json(json.loads(json.dumps(m.to_json())))):
        assert again == "1 seat is free" and (again.template, again.plural, again.count, again.params) == (
            "{n} seat is free", "{n} seats are free", "n", {"n": 1})
