"""The closed sets the layers share, enumerated: every outbox kind is delivered by someone, every
audit action has words in every language, every verb a card emits is routed and carries the
data its spec names, and each card-data dataclass reads back what it writes."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from cards import audit as audit_cards
from cards import data as card_data
from cards.i18n import STRINGS, SUPPORTED, T
from cards.verbs import SPECS, Verb
from core.kinds import AuditAction, Channel, OutboxKind, Outcome
from core.views import PageKey
from dialogs.router import Router, Turn
from web.workers import BILLING_KINDS

ROOT = Path(__file__).resolve().parent.parent


def _calls(folders: tuple[str, ...]):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    yield path.relative_to(ROOT), node


def _name(func: ast.expr) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _is_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


# ---------------------------------------------------------------------------- outbox kinds


def test_every_outbox_kind_has_whoever_delivers_it(demo):
    router = Router(demo)
    for kind in OutboxKind:
        if kind.channel == Channel.CHAT:
            assert kind in router.notifications, f"no flow renders the chat notification {kind}"
        elif kind.channel == Channel.CARD:
            assert kind in router.card_updates, f"no flow renders the card update {kind}"
        else:
            assert kind in BILLING_KINDS, f"the billing worker does not handle {kind}"
    # ... and nothing renders a kind that is not one (a typo would never be delivered)
    assert set(router.notifications) <= {k for k in OutboxKind if k.channel == Channel.CHAT}
    assert set(router.card_updates) <= {k for k in OutboxKind if k.channel == Channel.CARD}
    assert set(router.tracked) <= set(router.notifications)
    assert {k for k in OutboxKind if k.channel == Channel.BILLING} == BILLING_KINDS


def test_the_core_queues_outbox_kinds_only_by_their_enum():
    """``Unit.outbox`` and ``Unit.outbox_many`` take an :class:`OutboxKind` (its channel comes
    from it): no literal."""
    queued = [(path, node) for path, node in _calls(("core",)) if _name(node.func) in ("outbox", "outbox_many")]
    assert {_name(node.func) for _, node in queued} == {"outbox", "outbox_many"}
    found = [(path, node.lineno) for path, node in queued
             for kw in node.keywords if kw.arg == "kind" and _is_literal(kw.value)]
    assert not found, found
    assert not [(path, node.lineno) for path, node in queued if any(kw.arg == "channel" for kw in node.keywords)]


# ---------------------------------------------------------------------------- audit actions


_ACTION_ARG = {"audit_ok": 1, "record_refusal": 1, "require_admin": 1, "refuse": 1}


def test_audit_actions_are_written_by_their_enum_only():
    """Every action written to the audit log comes from :class:`AuditAction` (so that the label
    test below sees it): no string literal where an action is passed."""
    found = []
    for path, node in _calls(("core", "dialogs", "bot", "web", "payments")):
        name = _name(node.func)
        args = list(node.args)
        if name in _ACTION_ARG and len(args) > _ACTION_ARG[name] and _is_literal(args[_ACTION_ARG[name]]):
            found.append((str(path), node.lineno, name))
        is_units = isinstance(node.func, ast.Attribute) and _name(node.func.value) == "units"
        if is_units and name in ("query", "command") and len(args) > 1 and _is_literal(args[1]):
            found.append((str(path), node.lineno, name))
        if name in ("audit", "audit_ok") and any(kw.arg == "action" and _is_literal(kw.value) for kw in node.keywords):
            found.append((str(path), node.lineno, name))
    assert not found, found


@pytest.mark.parametrize("lang", SUPPORTED)
def test_every_audit_action_has_a_label_in_every_language(lang):
    t = T(lang)
    other = t("audit.other_action")
    for action in AuditAction:
        for outcome in Outcome:
            label = audit_cards.action_label(t, action, outcome)
            assert label and label != other, f"{action} ({outcome}) has no words in {lang}"
    for key in {*audit_cards._DONE.values(), *audit_cards._TRIED.values(), "audit.card_action", "audit.other_action"}:
        assert STRINGS[lang].get(key), f"{key} is not translated in {lang}"
    # a refused card step is said generically, for every verb
    for verb in Verb:
        assert audit_cards.action_label(t, AuditAction.card(verb), Outcome.REFUSED) == t("audit.card_action")
    # every label names an action that is one (an entry for a typo would hide a missing one)
    assert set(audit_cards._DONE) | set(audit_cards._TRIED) <= set(AuditAction)


# ---------------------------------------------------------------------------- verbs and their data


def _emitted_verbs() -> dict[str, tuple[str, int]]:
    """Every verb a card builder names: ``execute(title, Verb.X, ...)``."""
    found: dict[str, tuple[str, int]] = {}
    for path, node in _calls(("cards",)):
        if _name(node.func) != "execute" or len(node.args) < 2:
            continue
        verb = node.args[1]
        assert not _is_literal(verb), f"{path}:{node.lineno}: a verb is a Verb member, not a literal"
        if isinstance(verb, ast.Attribute) and _name(verb.value) == "Verb":
            found.setdefault(Verb[verb.attr], (str(path), node.lineno))
    return found


def test_every_verb_a_card_emits_is_routed_and_every_route_is_a_verb(demo):
    router = Router(demo)
    emitted = _emitted_verbs()
    assert len(emitted) > 30
    missing = {verb: where for verb, where in emitted.items() if verb not in router.actions}
    assert not missing, f"buttons no flow answers: {missing}"
    assert set(router.actions) <= set(Verb)
    assert set(SPECS) == set(Verb), "every verb has a spec (its data and whether it writes)"


def _sample(cls: type[card_data.CardData]) -> list[card_data.CardData]:
    """Instances of a card-data class: every field set, and the optional ones left out."""
    values = {int: 7, str: "abc", bool: True}
    full, bare = {}, {}
    for f in dataclasses.fields(cls):
        kind = f.type
        if f.name == "back":
            full[f.name] = "list"
        elif kind.startswith("PageKey"):
            full[f.name] = PageKey("after", ("abc", 7))
        elif "tuple[CartLine" in kind:
            full[f.name] = (card_data.CartLine("eco", "month", 2), card_data.CartLine("pro", "year", "3"))
        elif kind.startswith("tuple[int"):
            full[f.name] = (3, 5, 8)
        elif kind.startswith("bool"):
            full[f.name] = True
        elif kind.startswith("int"):
            full[f.name] = values[int]
        else:
            full[f.name] = values[str]
        if f.default is dataclasses.MISSING:
            bare[f.name] = full[f.name]
    return [cls(**full), cls(**bare)]


CARD_DATA = sorted({spec.data for spec in SPECS.values()} | {c for s in SPECS.values() for c in s.also},
                   key=lambda c: c.__name__)


def test_every_card_data_class_is_in_a_spec():
    classes = {c for c in vars(card_data).values()
               if isinstance(c, type) and issubclass(c, card_data.CardData) and c is not card_data.CardData}
    assert classes == set(CARD_DATA)


@pytest.mark.parametrize("cls", CARD_DATA, ids=lambda c: c.__name__)
def test_card_data_reads_back_what_it_writes(cls):
    for value in _sample(cls):
        carried = json.loads(json.dumps(value.to_data()))  # (as Teams sends it back)
        assert cls.parse(carried) == value
        assert all(v is not None for v in carried.values()), "an optional key is left out, not null"


@pytest.mark.parametrize("cls", [c for c in CARD_DATA if c is not card_data.NoData], ids=lambda c: c.__name__)
def test_card_data_refuses_what_is_not_its_shape(cls):
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    bad = {"pool": "x", "request": [1], "quote": 5, "scheduled": -1, "user": None, "cart": "nope",
           "sel": ["a"], "ids": {"a": 1}}
    data = _sample(cls)[0].to_data()
    tampered = {k: bad[k] for k in data if k in bad}
    if not required and not tampered:
        pytest.skip("no field of this shape can be malformed")
    with pytest.raises(card_data.CardDataError):
        cls.parse({**data, **tampered} if tampered else {})


def test_a_users_page_keyset_that_is_not_one_falls_back_to_the_page_number():
    """A malformed ``keyset`` (as the core's check refuses it: a shape, relation or sort key that
    is not one, a user id outside the 32-bit INTEGER column) is dropped, the rest of the page read."""
    page = card_data.UsersPage(4, 2, "ann", (1,), (2, 3), PageKey("before", ("ann", 3)))
    assert card_data.UsersPage.parse(json.loads(json.dumps(page.to_data()))) == page
    for bad in (["after", ["x"]], ["sideways", ["a", 1]], ["at", [1, "a"]], ["at", ["a", True]], "after",
                ["after", ["a", 2**31]], ["after", ["a", 0]], ["at", ["a" * 201, 1]], {"rel": "at"}, None):
        parsed = card_data.UsersPage.parse({**page.to_data(), "keyset": bad})
        assert parsed == dataclasses.replace(page, keyset=None), bad


def _buttons(card: dict):
    if isinstance(card, dict):
        if card.get("type") == "Action.Execute":
            yield card
        for value in card.values():
            yield from _buttons(value)
    elif isinstance(card, list):
        for value in card:
            yield from _buttons(value)


def test_each_button_carries_the_data_its_verb_spec_names(demo, admin):
    """Cards as the builders make them, crawled from every command: each button's data is exactly
    one of the shapes its verb's spec names (written back unchanged), and its flow's parser
    takes it. The crawl clicks only steps that do not write."""
    router = Router(demo)
    turn = Turn(admin)
    queue = [router.on_text(turn, name) for name in router.command_names(True)]
    seen: set[tuple[str, str]] = set()
    checked = 0
    while queue and checked < 400:
        card = json.loads(json.dumps(queue.pop(0)))
        for button in _buttons(card):
            verb, data = Verb(button["verb"]), button["data"]
            spec = SPECS[verb]
            spec.data.parse(data)
            assert any(shape.parse(data).to_data() == data for shape in spec.shapes), (verb, data)
            checked += 1
            key = (verb, json.dumps(data, sort_keys=True))
            if key not in seen and not spec.writes and verb not in (Verb.DISMISS, Verb.HELP) and len(seen) < 40:
                seen.add(key)
                queue.append(router.on_action(turn, verb, data))
    assert checked > 50 and len({v for v, _ in seen}) > 10
