"""The one factory for invoke responses, so no handler hand-builds one.

Universal Actions (``adaptiveCard/action``) are answered in the HTTP reply with
``{statusCode, type, value}``; typeahead (``application/search``) with a search response."""

from __future__ import annotations

from botbuilder.schema import InvokeResponse

from bot.connector import SharedJson

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
