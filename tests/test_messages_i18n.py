"""Refusals in the reader's language: every person-facing message of the core and the dialogs
is a core.errors.Message whose English template has a French entry (cards.i18n.MESSAGES_FR)
with the same placeholders, and a refusal shown on a card is French in fr-FR, English in en-US."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

import bot.handler  # noqa: F401 - (loads every refusal class: the core's, the dialogs' and the bot's)
from cards.i18n import MESSAGES_FR, Plural, T, forms
from cards.verbs import Verb
from core.errors import DomainError, Message
from dialogs.base import Turn
from dialogs.router import Router
from tests.harness import text_of

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(p for d in ("core", "dialogs", "bot") for p in (ROOT / d).rglob("*.py")),
                  ROOT / "cards" / "data.py"])  # (the card-data refusals)


def _subclasses(cls: type) -> set[type]:
    return {cls} | {s for sub in cls.__subclasses__() for s in _subclasses(sub)}


# the exceptions whose message a person reads (or an administrator, in the audit log)
REFUSALS = {c.__name__ for c in _subclasses(DomainError)} | {"ProtocolError"}


def _name(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _calls(tree: ast.AST, names: set[str]):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in names:
            yield node


def _literal(args: list[ast.expr], i: int) -> str | None:
    arg = args[i] if len(args) > i else None
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None


def templates(tree: ast.AST) -> list[tuple[int, str | None]]:
    """(line, template) of every ``Message(...)`` and ``Message.counted(...)`` call (the latter's
    singular template, the catalog's key); template None when it is not a literal."""
    return [(c.lineno, _literal(c.args, 0)) for c in _calls(tree, {"Message", "counted"})]


def counted_templates() -> dict[str, tuple[str, str, str]]:
    """The (singular, plural, count) of every ``Message.counted(...)`` call, by singular template."""
    found = {}
    for path in SOURCES:
        for c in _calls(ast.parse(path.read_text(encoding="utf-8")), {"counted"}):
            one, other, count = (_literal(c.args, i) for i in range(3))
            assert None not in (one, other, count), f"{path.name}:{c.lineno}: counted() needs literal templates"
            found[one] = (one, other, count)
    return found


def raw_refusals(tree: ast.AST) -> list[int]:
    """Lines where a refusal is built from text that is not a Message: a literal, an f-string, or
    text joined with + or %."""
    def raw(arg: ast.expr) -> bool:
        return (isinstance(arg, ast.Constant) and isinstance(arg.value, str)) or isinstance(arg, ast.JoinedStr) \
            or (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add | ast.Mod))

    return [c.lineno for c in _calls(tree, REFUSALS) if c.args and raw(c.args[0])]


def used_templates() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in SOURCES:
        for line, template in templates(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{line}"
            assert template is not None, f"{where}: Message() needs a literal template (catalogs are keyed by it)"
            found.setdefault(template, where)
    return found


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


# ---------------------------------------------------------------------------- the catalog


def test_the_checks_see_what_they_look_for():
    tree = ast.parse('raise InvalidInput("x")\nraise NotFound(f"no {y}")\nerr = CardDataError("a " + b)\n'
                     'raise ProtocolError(Message("ok"))\nraise NotAdmin(Message(t))\nraise ValueError("x")')
    assert raw_refusals(tree) == [1, 2, 3]
    assert templates(tree) == [(4, "ok"), (5, None)]
    counted = ast.parse('m = Message.counted("{n} seat", "{n} seats", "n", n=k)')
    assert templates(counted) == [(1, "{n} seat")]


def test_no_refusal_is_built_from_plain_text():
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in SOURCES
                 for line in raw_refusals(ast.parse(path.read_text(encoding="utf-8")))]
    assert not offenders, f"refusals whose text is not a Message (so never translated): {offenders}"


def test_every_message_has_a_french_entry_and_no_entry_is_stale():
    used = used_templates()
    assert len(used) > 80
    missing = {t: where for t, where in used.items() if t not in MESSAGES_FR}
    assert not missing, f"messages without a French entry in cards.i18n.MESSAGES_FR: {missing}"
    assert not set(MESSAGES_FR) - set(used), f"French entries no code uses: {sorted(set(MESSAGES_FR) - set(used))}"


@pytest.mark.parametrize("template", sorted(MESSAGES_FR))
def test_french_entry_has_the_same_placeholders(template):
    counted = counted_templates().get(template)
    french = MESSAGES_FR[template]
    assert isinstance(french, Plural) is (counted is not None), "a counted message has two French forms, by the " \
                                                                "same count; any other, one"
    english = counted[:2] if counted else (template,)
    if counted:
        # (gettext: the count that picks the French form is the Message's own, counted[2])
        assert fields(french.one) | fields(french.other) == fields(counted[1])
        params = {name: "X" for name in fields(counted[1])}
        for n in (0, 1, 2):
            said = T("fr").say(Message.counted(*counted, **{**params, counted[2]: n}))
            assert said == (french.one if n < 2 else french.other).format(**{**params, counted[2]: n}), (n, said)
    for text in forms(french):
        assert fields(text) <= fields(english[-1]), (template, text)
        assert "“" not in text and "’" not in text, f"French quotes are « » and apostrophes ' here: {text!r}"
    if not counted:
        assert fields(french) == fields(template), (template, french)


def test_say_translates_messages_and_their_message_params_and_passes_text_through():
    whom = Message("{a} or {b}", a="Ada", b="Bo")
    refusal = Message("Only an administrator of your License Desk account can do this. Ask {whom}.", whom=whom)
    assert str(refusal) == "Only an administrator of your License Desk account can do this. Ask Ada or Bo."
    assert type(str(refusal)) is str and (refusal.template, refusal.params) == (
        "Only an administrator of your License Desk account can do this. Ask {whom}.", {"whom": whom})
    fr, en = T("fr-CA"), T("en-US")
    assert fr.say(refusal) == "Seul un administrateur de votre compte License Desk peut faire cela. " \
                              "Adressez-vous à Ada ou à Bo."
    assert en.say(refusal) == refusal and type(en.say(refusal)) is str
    assert fr.say("Déjà traduit.") == "Déjà traduit."  # plain text passes through
    unknown = Message("Not in any catalog: {n}.", n=3)
    assert fr.say(unknown) == "Not in any catalog: 3." and type(fr.say(unknown)) is str


# ---------------------------------------------------------------------------- on the cards


def _pool(lic, actor, plan: str, interval: str = "month"):
    return next(p for p in lic.pools.list_pools(actor) if (p.plan_code, p.interval) == (plan, interval))


def _user_of(lic, actor, pool_id: int) -> int:
    return lic.pools.pool_users(actor, pool_id, page_size=1).items[0].id


@pytest.fixture
def router(demo):
    return Router(demo)


LOCALES = ["en-US", "fr-FR"]


@pytest.mark.parametrize("locale", LOCALES)
def test_invalid_quantity_in_the_buy_flow(router, admin, locale):
    card = router.on_action(Turn(admin, locale), Verb.BUY_ADD, {"cart": [], "plan": "eco", "interval": "month",
                                                                    "qty": "0"})
    expected = {"en-US": "That line was not added: The quantity must be a whole number from 1 to 10,000.",
                "fr-FR": "Cette ligne n'a pas été ajoutée\u00a0: La quantité doit être un nombre entier de 1 à 10 000."}
    assert expected[locale] in text_of(card)


@pytest.mark.parametrize("locale", LOCALES)
def test_not_an_upgrade(router, demo, admin, locale):
    pool = _pool(demo, admin, "advanced")
    data = {"pool": pool.id, "sel": [_user_of(demo, admin, pool.id)], "plan": "eco"}
    card = router.on_action(Turn(admin, locale), Verb.UPGRADE_QUOTE, data)
    expected = {"en-US": "Eco is not above Advanced: an upgrade must go to a higher tier.",
                "fr-FR": "L'offre Eco n'est pas au-dessus de l'offre Advanced\u00a0: une mise à niveau doit aller vers "
                         "une offre supérieure."}
    assert expected[locale] in text_of(card)


@pytest.mark.parametrize("locale", LOCALES)
def test_held_by_quote(router, demo, admin, admin2, locale):
    pool = _pool(demo, admin, "eco")
    user = _user_of(demo, admin, pool.id)
    demo.quotes.quote_upgrade(admin2, pool.id, [user], "advanced")  # Megan Bowen's quote holds the seat until 12:30
    card = router.on_action(Turn(admin, locale), Verb.UPGRADE_QUOTE, {"pool": pool.id, "sel": [user],
                                                                       "plan": "pro"})
    expected = {"en-US": "These seats are held by an open quote of Megan Bowen until 2026-03-10 12:30 UTC. Wait for "
                         "it to be paid or to expire, or ask Megan Bowen to cancel it.",
                "fr-FR": "Ces licences sont réservées jusqu'au 2026-03-10 à 12:30 UTC par un devis ouvert préparé "
                         "par Megan Bowen. Attendez qu'il soit payé ou qu'il expire, ou demandez à Megan Bowen de "
                         "l'annuler."}
    assert expected[locale] in text_of(card)


@pytest.mark.parametrize("locale", LOCALES)
def test_too_many_seats_to_remove_is_said_on_the_form(router, demo, admin, locale):
    pool = _pool(demo, admin, "eco")  # 30 bought, 24 assigned
    card = router.on_action(Turn(admin, locale), Verb.SEATS_REMOVE_CONFIRM, {"pool": pool.id, "qty": "7",
                                                                                   "scheduled": 0})
    expected = {"en-US": "Only 6 seats of this pool are free. Unassign users first, then remove their seats.",
                "fr-FR": "Ce lot n'a que 6 licences libres. Retirez d'abord des utilisateurs, puis supprimez leurs "
                         "licences."}
    assert expected[locale] in text_of(card)


@pytest.mark.parametrize("locale", LOCALES)
def test_a_dialog_refusal_is_translated_too(router, demo, admin, locale):
    card = router.on_action(Turn(admin, locale), "no.such.verb", {})
    expected = {"en-US": "This button is not one I know (the card may come from an older version). Start again "
                         "from the license pools.",
                "fr-FR": "Je ne connais pas ce bouton (la carte vient peut-être d'une version plus ancienne). "
                         "Recommencez depuis les lots de licences."}
    assert expected[locale] in text_of(card)


def _french_texts() -> list[str]:
    import payments.sandbox.pages  # noqa: F401 - (its strings too)
    from cards.i18n import MESSAGES, STRINGS

    return [text for value in [*STRINGS["fr"].values(), *MESSAGES["fr"].values()] for text in forms(value)]


def test_french_punctuation_has_its_no_break_space():
    """French typography: a no-break space (U+00A0) before : ; ! ? % and », after «; never an ordinary
    space, never none (outside placeholders and their format specs, and not in "https://" or "10:30")."""
    import re

    outside = [re.sub(r"\{[^{}]*\}", "{}", text) for text in _french_texts()]
    wrong = [text for text in outside
             if re.search(r"(?:[^\u00a0]|^)[:;!?»%](?=[\s)»,.]|$)|«(?!\u00a0)", text)]
    assert wrong == []
    assert any("\u00a0:" in text for text in outside) and any("«\u00a0" in text for text in outside)


def test_french_elides_de_before_a_vowel_and_dates_read_jusquau():
    import cards.pool_admin  # noqa: F401 - (its strings)

    fr = T("fr-FR")
    assert fr("pool_admin.remove.title", pool="API Pro (mensuel)") == "Supprimer des licences d'API Pro (mensuel)"
    assert fr("pool_admin.remove.title", pool="Pro (mensuel)") == "Supprimer des licences de Pro (mensuel)"
    assert fr("users.held", time="3 déc. 2026") == "réservé par un devis jusqu'au 3 déc. 2026"
    assert fr("quote.credit", n=2, plan="Eco") == "Avoir pour le temps non utilisé sur 2 × Eco"
