"""The one factory for invoke responses, so no handler hand-builds one.

Universal Actions (``adaptiveCard/action``) are answered in the HTTP reply with
``{statusCode, type, value}``; typeahead (``application/search``) with a search response;
every other invoke with :func:`unsupported_response` (the app offers no dialogs, message
extensions or configuration: its manifest declares none)."""

from __future__ import annotations

from botbuilder.schema import InvokeResponse

from bot.serialization import SharedJson
from cards.i18n import T

CARD = "application/vnd.microsoft.card.adaptive"
MESSAGE = "application/vnd.microsoft.activity.message"
ERROR = "application/vnd.microsoft.error"
SEARCH = "application/vnd.microsoft.search.searchResponse"


def card_response(card: dict) -> InvokeResponse:
    # SharedJson: botbuilder deep-copies the invoke response activity (the card with it) otherwise
    return InvokeResponse(status=200, body=SharedJson({"statusCode": 200, "type": CARD, "value": card}))


def message_response(text: str) -> InvokeResponse:
    return InvokeResponse(status=200, body={"statusCode": 200, "type": MESSAGE, "value": text})


def error_response(status: int, code: str, message: str) -> InvokeResponse:
    if not 400 <= status <= 599:
        raise ValueError("an error response has a 4xx or 5xx status")
    return InvokeResponse(status=200, body={"statusCode": status, "type": ERROR,
                                            "value": {"code": code, "message": message}})


def search_response(results: list[dict]) -> InvokeResponse:
    clean = [{"title": str(r["title"]), "value": str(r["value"])} for r in results]
    return InvokeResponse(status=200, body={"statusCode": 200, "type": SEARCH, "value": {"results": clean}})


# Invokes the app has no use for, answered as Teams documents each kind, in words the user can
# read where Teams shows them (never botbuilder's 501 with a null body):
# - dialogs (task/fetch, task/submit; a message extension's or a message's fetchTask): a
#   TaskModuleResponse of type "message", which Teams shows in a pop-up (a non-200 answer makes
#   Teams show its own error);
# - message extensions (composeExtension/query, ...): a MessagingExtensionResult of type
#   "message" (plain text shown in the compose box's flyout);
# - bot configuration (config/fetch, config/submit): a config response of type "message";
# - message/submitAction (feedback on a message): an empty 200, Teams reads no body;
# - any other name, or none: HTTP 400 (Bot Framework's InvokeResponse carries the status).
_TASK = frozenset({"task/fetch", "task/submit", "composeExtension/fetchTask", "message/fetchTask"})
_EXTENSION = frozenset({"composeExtension/query", "composeExtension/queryLink", "composeExtension/anonymousQueryLink",
                        "composeExtension/selectItem", "composeExtension/submitAction"})
_CONFIG = frozenset({"config/fetch", "config/submit"})
_EMPTY = frozenset({"message/submitAction"})


def unsupported_response(name: str | None, locale) -> InvokeResponse:
    """The answer to an invoke the app does not handle (see above): 200 or 400, never 5xx."""
    text = T(locale)("invoke.unsupported")
    if name in _TASK:
        return InvokeResponse(status=200, body={"task": {"type": "message", "value": text}})
    if name in _EXTENSION:
        return InvokeResponse(status=200, body={"composeExtension": {"type": "message", "text": text}})
    if name in _CONFIG:
        return InvokeResponse(status=200, body={"config": {"type": "message", "value": text}})
    if name in _EMPTY:
        return InvokeResponse(status=200)
    return InvokeResponse(status=400, body={"statusCode": 400, "type": ERROR,
                                            "value": {"code": "UnsupportedInvoke", "message": text}})
