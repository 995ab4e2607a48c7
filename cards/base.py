"""Adaptive Card building blocks (schema 1.5). Pure functions: data in, dict out."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from cards.data import CardData

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
CARD_BUDGET = 28 * 1024
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_REFRESH_USERS = 60  # Teams: userIds names at most 60 users


def card(body: list[dict], actions: list[dict] | None = None, *, refresh: dict | None = None,
         fallback_text: str | None = None) -> dict:
    out: dict[str, Any] = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": VERSION, "body": body,
                           "msteams": {"width": "Full"}}
    if actions:
        out["actions"] = actions
    if refresh:
        out["refresh"] = refresh
    if fallback_text:
        out["fallbackText"] = fallback_text
    return out


def refresh_for(action: dict, user_ids: Iterable[str]) -> dict:
    """A card's ``refresh`` that Teams runs automatically only for ``user_ids`` (at most 60).
    Teams (Universal Actions, user IDs in refresh): without ``userIds``, every viewer of a chat of
    up to 60 people triggers the refresh, so members would be refused it; with ``userIds: []``
    nobody is refreshed automatically (the card menu still offers a manual refresh)."""
    return {"action": action, "userIds": list(dict.fromkeys(user_ids))[:MAX_REFRESH_USERS]}


# Markdown that Teams renders in TextBlock text and Fact titles and values (Teams: "Text formatting in
# cards"; Adaptive Cards: "a subset of CommonMark"): emphasis, links, lists, and whatever else a
# client's CommonMark renderer takes (headings, code, raw HTML, block quotes). A CommonMark
# backslash escape before ASCII punctuation shows the character itself.
_MD_INLINE = re.compile(r"[\\`*_\[\]<~]")  # emphasis, links and images, code, HTML and autolinks, strikethrough
_MD_BLOCK = re.compile(  # at the start of a line only: headings, lists, quotes, rules, setext underlines
    r"^(?:(?P<mark>#{1,6}(?=[ \t]|$)|[-+](?=[ \t]|$)|>|(?=[=-]+[ \t]*$)[=-])|(?P<num>\d{1,9})(?=[.)](?:[ \t]|$)))",
    re.M)
_LEADING = re.compile(r"^[ \t]+", re.M)  # four spaces or a tab would start a code block


def plain(value: str) -> str:
    """``value`` as literal text for a TextBlock or a Fact: every character that could start
    Markdown escaped, so that a name or a reason typed by a person (``**URGENT** [Approve](url)``)
    shows as typed, never as bold or a link. Text without Markdown characters is unchanged."""
    value = _LEADING.sub("", str(value).replace("\r\n", "\n").replace("\r", "\n"))
    value = _MD_INLINE.sub(lambda m: "\\" + m[0], value)
    return _MD_BLOCK.sub(lambda m: m["num"] + "\\" if m["num"] else "\\" + m["mark"], value)


def size(c: dict) -> int:
    return len(json.dumps(c, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def text(value: str, *, weight: str | None = None, size_: str | None = None, color: str | None = None,
         subtle: bool = False, wrap: bool = True, spacing: str | None = None, style: str | None = None,
         horizontal: str | None = None) -> dict:
    """A TextBlock showing ``value`` as it is (see :func:`plain`: no card text is Markdown)."""
    out: dict[str, Any] = {"type": "TextBlock", "text": plain(value), "wrap": wrap}
    if weight:
        out["weight"] = weight
    if size_:
        out["size"] = size_
    if color:
        out["color"] = color
    if subtle:
        out["isSubtle"] = True
    if spacing:
        out["spacing"] = spacing
    if style:
        out["style"] = style
    if horizontal:
        out["horizontalAlignment"] = horizontal
    return out


def title(value: str) -> dict:
    return text(value, weight="Bolder", size_="Medium", style="heading")


def facts(pairs: list[tuple[str, str]]) -> dict:
    """Title/value pairs, shown as they are (Teams renders Markdown in both: see :func:`plain`)."""
    return {"type": "FactSet", "facts": [{"title": plain(k), "value": plain(v)} for k, v in pairs]}


def execute(title_: str, verb: str, data: dict | CardData | None = None, *, style: str | None = None,
            inputs: str | None = None, tooltip: str | None = None) -> dict:
    """An Action.Execute button: ``verb`` (cards/verbs.py) with its data (a cards/data.py dataclass)."""
    payload = data.to_data() if isinstance(data, CardData) else dict(data or {})
    out: dict[str, Any] = {"type": "Action.Execute", "title": title_, "verb": str(verb), "data": payload}
    if style:
        out["style"] = style
    if inputs:
        out["associatedInputs"] = inputs  # "none": do not send this card's inputs
    if tooltip:
        out["tooltip"] = tooltip
    return out


def open_url(title_: str, url: str, *, style: str | None = None) -> dict:
    out = {"type": "Action.OpenUrl", "title": title_, "url": url}
    if style:
        out["style"] = style
    return out


def action_set(actions: list[dict], *, spacing: str | None = None) -> dict:
    out: dict[str, Any] = {"type": "ActionSet", "actions": actions}
    if spacing:
        out["spacing"] = spacing
    return out


def column(items: list[dict], width: str = "stretch", *, vertical: str | None = "Center") -> dict:
    out: dict[str, Any] = {"type": "Column", "width": width, "items": items}
    if vertical:
        out["verticalContentAlignment"] = vertical
    return out


def columns(cols: list[dict], *, separator: bool = False, spacing: str | None = None) -> dict:
    out: dict[str, Any] = {"type": "ColumnSet", "columns": cols}
    if separator:
        out["separator"] = True
    if spacing:
        out["spacing"] = spacing
    return out


def amount_row(label: str, amount: str, *, bold: bool = False, subtle: bool = False) -> dict:
    """One label | right-aligned amount row (a quote's lines and totals)."""
    weight = "Bolder" if bold else None
    return columns([column([text(label, weight=weight, subtle=subtle)]),
                    column([text(amount, weight=weight, subtle=subtle, wrap=False, horizontal="Right")], "auto")],
                   spacing="Small")


def container(items: list[dict], *, style: str | None = None, spacing: str | None = None) -> dict:
    out: dict[str, Any] = {"type": "Container", "items": items}
    if style:
        out["style"] = style
    if spacing:
        out["spacing"] = spacing
    return out


def input_text(id_: str, *, label: str | None = None, placeholder: str | None = None, value: str | None = None,
               max_length: int | None = None, multiline: bool = False) -> dict:
    out: dict[str, Any] = {"type": "Input.Text", "id": id_}
    if label:
        out["label"] = label
    if placeholder:
        out["placeholder"] = placeholder
    if value:
        out["value"] = value
    if max_length:
        out["maxLength"] = max_length
    if multiline:
        out["isMultiline"] = True
    return out


def choice_set(id_: str, choices: list[tuple[str, str]], *, label: str | None = None, value: str | None = None,
               multi: bool = False, style: str = "compact", placeholder: str | None = None,
               required: bool = False, error: str | None = None, dataset: str | None = None) -> dict:
    out: dict[str, Any] = {"type": "Input.ChoiceSet", "id": id_, "style": style,
                           "choices": [{"title": t, "value": v} for t, v in choices]}
    if label:
        out["label"] = label
    if value:
        out["value"] = value
    if multi:
        out["isMultiSelect"] = True
    if placeholder:
        out["placeholder"] = placeholder
    if required:
        out["isRequired"] = True
        out["errorMessage"] = error or label or "Required"
    if dataset:
        out["choices.data"] = {"type": "Data.Query", "dataset": dataset}
    return out


def message_card(heading: str, lines: list[str], actions: list[dict] | None = None, *,
                 color: str | None = None) -> dict:
    body = [title(heading)] + [text(line, color=color if i == 0 else None) for i, line in enumerate(lines)]
    return card(body, actions, fallback_text=heading)
