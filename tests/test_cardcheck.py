"""The card validator (tests/cardcheck.py + tests/tools/validate_cards.mjs) catches real errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests import cardcheck
from tests.cardcheck import (
    CardValidatorUnavailable,
    assert_card_budget,
    assert_valid_cards,
    card_size,
    validate_cards,
)


def good_card() -> dict[str, Any]:
    """A Teams card using everything License Desk relies on; must validate cleanly."""
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "msteams": {"width": "Full"},
        "refresh": {
            "action": {"type": "Action.Execute", "verb": "refresh", "data": {"request_id": "r-1"}},
            "userIds": ["29:1abc", "29:2def"],
        },
        "body": [
            {
                "type": "TextBlock",
                "text": "License request",
                "size": "Large",
                "weight": "Bolder",
                "style": "heading",
                "wrap": True,
            },
            {
                "type": "ColumnSet",
                "columns": [
                    {
                        "type": "Column",
                        "width": "auto",
                        "items": [{"type": "Image", "url": "https://example.com/a.png", "altText": "app"}],
                    },
                    {
                        "type": "Column",
                        "width": "stretch",
                        "items": [
                            {"type": "TextBlock", "text": "Figma", "isSubtle": True, "spacing": "None"}
                        ],
                    },
                ],
            },
            {
                "type": "FactSet",
                "facts": [{"title": "Seats", "value": "3 of 10"}, {"title": "Cost", "value": "€12"}],
            },
            {
                "type": "Input.Text",
                "id": "justification",
                "label": "Why?",
                "isMultiline": True,
                "maxLength": 500,
                "isRequired": True,
                "errorMessage": "Please say why",
            },
            {
                "type": "Input.ChoiceSet",
                "id": "apps",
                "label": "Apps",
                "isMultiSelect": True,
                "style": "filtered",
                "choices": [{"title": "Figma", "value": "figma"}],
                "choices.data": {"type": "Data.Query", "dataset": "licenses"},
            },
            {
                "type": "Container",
                "style": "emphasis",
                "items": [{"type": "TextBlock", "text": "Approver: Ana", "wrap": True}],
                "selectAction": {"type": "Action.OpenUrl", "url": "https://example.com/req/1"},
            },
            {
                "type": "ActionSet",
                "actions": [
                    {
                        "type": "Action.Execute",
                        "title": "Approve",
                        "verb": "approve",
                        "data": {"request_id": "r-1"},
                        "style": "positive",
                    },
                    {
                        "type": "Action.Execute",
                        "title": "Deny",
                        "verb": "deny",
                        "data": {"request_id": "r-1"},
                        "style": "destructive",
                        "associatedInputs": "none",
                    },
                ],
            },
        ],
        "actions": [
            {"type": "Action.Execute", "title": "Submit", "verb": "submit", "data": {"k": "v"}},
            {
                "type": "Action.ShowCard",
                "title": "More",
                "card": {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "Details"}]},
            },
        ],
    }


def with_body(*elements: dict[str, Any], version: str = "1.5") -> dict[str, Any]:
    return {"type": "AdaptiveCard", "version": version, "body": list(elements)}


def mutated(change) -> dict[str, Any]:
    card = good_card()
    change(card)
    return card


TEXT = {"type": "TextBlock", "text": "x"}

# name -> (card, substrings that must all appear in one reported error)
BAD_CARDS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown element type": (with_body({"type": "Foo"}), ["$.body[0]", "UnknownElementType", '"Foo"']),
    "element type newer than 1.5": (
        with_body({"type": "Carousel", "pages": []}),
        ["UnknownElementType", "1.6"],
    ),
    "element without type": (with_body({"text": "x"}), ["UnknownElementType", '"undefined"']),
    "non-object element": (with_body("just text"), ["body[0]", "must be an object"]),
    "unknown property on TextBlock": (
        with_body({"type": "TextBlock", "text": "x", "colour": "red"}),
        ["$.body[0]", "UnknownProperty", '"colour"', "TextBlock"],
    ),
    "property the parser accepts but 1.5 schema lacks": (
        with_body({"type": "Container", "horizontalAlignment": "center", "items": [TEXT]}),
        ["UnknownProperty", '"horizontalAlignment"', "not in the Adaptive Cards 1.5 schema"],
    ),
    "unknown root property": (
        mutated(lambda c: c.update(theme="dark")),
        ["$:", "UnknownProperty", '"theme"'],
    ),
    "msteams on an element": (
        with_body({"type": "TextBlock", "text": "x", "msteams": {"width": "Full"}}),
        ["UnknownProperty", '"msteams"', "TextBlock"],
    ),
    "unknown msteams key": (mutated(lambda c: c["msteams"].update(height="tall")), ["$.msteams", '"height"']),
    "bad msteams width": (mutated(lambda c: c["msteams"].update(width="Wide")), ["$.msteams", '"Wide"']),
    "unknown property on Action.Execute": (
        mutated(lambda c: c["actions"][0].update(verbs="x")),
        ["$.actions[0]", "UnknownProperty", '"verbs"', "Action.Execute"],
    ),
    "Action.Execute verb not a string": (
        mutated(lambda c: c["actions"][0].update(verb=42)),
        ["$.actions[0]", "InvalidPropertyType", '"verb"', "string"],
    ),
    "Action.Execute data not object/string": (
        mutated(lambda c: c["actions"][0].update(data=[1])),
        ["InvalidPropertyType", '"data"'],
    ),
    "Action.Execute bad associatedInputs": (
        mutated(lambda c: c["actions"][0].update(associatedInputs="all")),
        ["InvalidPropertyValue", "associatedInputs"],
    ),
    "Action.Execute in a 1.2 card": (
        {
            "type": "AdaptiveCard",
            "version": "1.2",
            "body": [TEXT],
            "actions": [{"type": "Action.Execute", "verb": "go"}],
        },
        ["UnknownActionType", "Action.Execute", "needs card version 1.4"],
    ),
    "unknown action type": (
        mutated(lambda c: c["actions"].append({"type": "Action.Http", "title": "x"})),
        ["UnknownActionType", "Action.Http"],
    ),
    "refresh action not Action.Execute": (
        mutated(lambda c: c["refresh"].update(action={"type": "Action.Submit"})),
        ["$.refresh", "ActionTypeNotAllowed", "Action.Submit"],
    ),
    "refresh userIds not strings": (
        mutated(lambda c: c["refresh"].update(userIds=["a", 3])),
        ["$.refresh", "userIds"],
    ),
    "Action.ShowCard as selectAction": (
        with_body(
            {
                "type": "Container",
                "items": [TEXT],
                "selectAction": {"type": "Action.ShowCard", "card": with_body(TEXT)},
            }
        ),
        ["ActionTypeNotAllowed", "Action.ShowCard"],
    ),
    "Action.OpenUrl without url": (
        mutated(lambda c: c["actions"].append({"type": "Action.OpenUrl", "title": "x"})),
        ["PropertyCantBeNull", '"url"'],
    ),
    "version 1.6": (mutated(lambda c: c.update(version="1.6")), ["UnsupportedCardVersion", "1.6"]),
    "invalid version string": (mutated(lambda c: c.update(version="one")), ["Invalid version string", "one"]),
    "missing version": (mutated(lambda c: c.pop("version")), ["PropertyCantBeNull", '"version"']),
    "wrong card type": (mutated(lambda c: c.update(type="Card")), ["MissingCardType"]),
    "1.6-only property": (
        with_body({"type": "Input.Text", "id": "a", "label": "A", "labelPosition": "inline"}),
        ["UnsupportedProperty", "labelPosition", "1.6"],
    ),
    "invalid enum value": (
        with_body({"type": "TextBlock", "text": "x", "size": "huge"}),
        ["$.body[0]", "InvalidPropertyValue", '"huge"', '"size"'],
    ),
    "invalid spacing": (
        with_body({"type": "TextBlock", "text": "x", "spacing": "lots"}),
        ["InvalidPropertyValue", '"lots"', '"spacing"'],
    ),
    "invalid column width": (
        with_body({"type": "ColumnSet", "columns": [{"type": "Column", "width": "wide", "items": [TEXT]}]}),
        ["$.body[0].columns[0]", "InvalidPropertyValue", "wide"],
    ),
    "boolean given as string": (
        with_body({"type": "TextBlock", "text": "x", "wrap": "true"}),
        ["InvalidPropertyType", '"wrap"', "boolean"],
    ),
    "number given as string": (
        with_body({"type": "Input.Text", "id": "a", "maxLength": "10"}),
        ["InvalidPropertyType", '"maxLength"', "number"],
    ),
    "null value": (with_body({"type": "TextBlock", "text": None}), ["InvalidPropertyType", '"text"', "null"]),
    "body not an array": (
        {"type": "AdaptiveCard", "version": "1.5", "body": {"type": "TextBlock", "text": "x"}},
        ["InvalidPropertyType", '"body"', "array"],
    ),
    "TextBlock without text": (with_body({"type": "TextBlock"}), ["PropertyCantBeNull", '"text"']),
    "Container without items": (with_body({"type": "Container"}), ["PropertyCantBeNull", '"items"']),
    "Fact without value": (
        with_body({"type": "FactSet", "facts": [{"title": "a"}]}),
        ["$.body[0].facts[0]", "PropertyCantBeNull", '"value"'],
    ),
    "unknown property on a Fact": (
        with_body({"type": "FactSet", "facts": [{"title": "a", "value": "b", "url": "x"}]}),
        ["$.body[0].facts[0]", "UnknownProperty", '"url"'],
    ),
    "input without id": (with_body({"type": "Input.Text", "label": "x"}), ["$.body[0]", "unique Id"]),
    "duplicate input ids": (
        with_body(
            {"type": "Input.Text", "id": "a", "label": "A"}, {"type": "Input.Number", "id": "a", "label": "B"}
        ),
        ["$.body[1]", "DuplicateId", '"a"'],
    ),
    "duplicate element ids": (
        with_body({"type": "TextBlock", "text": "x", "id": "t"}, {"type": "Image", "url": "u", "id": "t"}),
        ["DuplicateId", '"t"'],
    ),
    "required input without label": (
        with_body({"type": "Input.Text", "id": "a", "isRequired": True, "errorMessage": "e"}),
        ["RequiredInputsShouldHaveLabel"],
    ),
    "ChoiceSet without choices": (
        with_body({"type": "Input.ChoiceSet", "id": "c", "label": "C", "choices": []}),
        ["CollectionCantBeEmpty"],
    ),
    "choice without value": (
        with_body({"type": "Input.ChoiceSet", "id": "c", "label": "C", "choices": [{"title": "a"}]}),
        ["title and value"],
    ),
    "bad ChoiceSet style": (
        with_body(
            {
                "type": "Input.ChoiceSet",
                "id": "c",
                "label": "C",
                "style": "dropdown",
                "choices": [{"title": "a", "value": "a"}],
            }
        ),
        ["InvalidPropertyValue", '"dropdown"'],
    ),
    "choices.data with wrong type": (
        mutated(lambda c: c["body"][4]["choices.data"].update(type="Data.Fetch")),
        ['["choices.data"]', "InvalidPropertyValue", "Data.Fetch"],
    ),
    "choices.data without dataset": (
        mutated(lambda c: c["body"][4]["choices.data"].pop("dataset")),
        ['["choices.data"]', "PropertyCantBeNull", '"dataset"'],
    ),
    "unknown property in choices.data": (
        mutated(lambda c: c["body"][4]["choices.data"].update(source="x")),
        ['["choices.data"]', "UnknownProperty", '"source"'],
    ),
    "choices.data nested under choices": (
        with_body(
            {
                "type": "Input.ChoiceSet",
                "id": "c",
                "label": "C",
                "choices": {"data": {"type": "Data.Query", "dataset": "d"}},
            }
        ),
        ["InvalidPropertyType", '"choices"', "array"],
    ),
    "bad fallback": (
        with_body({"type": "TextBlock", "text": "x", "fallback": "hide"}),
        ["InvalidPropertyValue", "fallback"],
    ),
    "unknown property in a ShowCard card": (
        mutated(lambda c: c["actions"][1]["card"].update(bodyy=[])),
        ["$.actions[1].card", "UnknownProperty", '"bodyy"'],
    ),
    "too many actions for Teams": (
        with_body(TEXT)
        | {"actions": [{"type": "Action.Execute", "title": str(i), "verb": "v"} for i in range(7)]},
        ["TooManyActions", "(6)"],
    ),
}


@pytest.fixture(scope="module")
def verdicts() -> dict[str, list[str]]:
    """Validate the good card and every bad card in one Node run."""
    names = ["good", *BAD_CARDS]
    cards = [good_card(), *(card for card, _ in BAD_CARDS.values())]
    return dict(zip(names, validate_cards(cards), strict=True))


def test_good_card_passes(verdicts):
    assert verdicts["good"] == []
    assert_valid_cards([good_card()])


def test_good_card_is_within_budget():
    assert_card_budget(good_card())


@pytest.mark.parametrize("name", list(BAD_CARDS))
def test_bad_card_is_reported(verdicts, name):
    _, expected = BAD_CARDS[name]
    errors = verdicts[name]
    assert any(all(part in error for part in expected) for error in errors), (
        f"{name}: expected an error containing {expected}, got {errors}"
    )


def test_results_are_per_card_in_order():
    bad = with_body({"type": "Foo"})
    results = validate_cards([good_card(), bad, good_card()])
    assert results[0] == [] and results[2] == []
    assert results[1] and "Foo" in results[1][0]


def test_input_cards_are_not_modified():
    card = good_card()
    before = copy.deepcopy(card)
    validate_cards([card])
    assert card == before


def test_assert_valid_cards_lists_index_and_errors():
    with pytest.raises(AssertionError) as info:
        assert_valid_cards([good_card(), with_body({"type": "TextBlock", "text": "x", "colour": "red"})])
    message = str(info.value)
    assert "1 of 2" in message
    assert "card 1:" in message and "card 0:" not in message
    assert '"colour"' in message


def test_empty_batch_needs_no_node():
    assert validate_cards([]) == []


def test_single_card_instead_of_list_is_rejected():
    with pytest.raises(TypeError, match="list of cards"):
        validate_cards(good_card())


def test_non_json_card_is_rejected():
    with pytest.raises(TypeError, match="card 1"):
        validate_cards([good_card(), {"type": "AdaptiveCard", "version": "1.5", "body": [object()]}])


def test_card_size_is_compact_utf8_json():
    assert card_size({"a": "é", "b": [1, 2]}) == len('{"a":"é","b":[1,2]}'.encode())
    assert card_size({"a": "é"}) == 10


def test_card_budget():
    card = with_body({"type": "TextBlock", "text": "x" * 30_000})
    with pytest.raises(AssertionError, match=r"over the 28672-byte budget"):
        assert_card_budget(card)
    assert_card_budget(card, limit=card_size(card))
    with pytest.raises(AssertionError):
        assert_card_budget(card, limit=card_size(card) - 1)


def test_missing_package_says_npm_install(monkeypatch, tmp_path):
    monkeypatch.setattr(cardcheck, "ADAPTIVECARDS_BUNDLE", tmp_path / "nope.js")
    with pytest.raises(CardValidatorUnavailable, match="npm install"):
        validate_cards([good_card()])


def test_missing_node_says_npm_install(monkeypatch):
    monkeypatch.setattr(cardcheck.shutil, "which", lambda _name: None)
    with pytest.raises(CardValidatorUnavailable, match="npm install"):
        validate_cards([good_card()])
