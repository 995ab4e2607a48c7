"""How a turn answers: a card posted in reply, or an invoke's response."""

from __future__ import annotations

from botbuilder.core import CardFactory, MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, InvokeResponse

from bot.serialization import SharedJson


async def reply(tc: TurnContext, card: dict) -> None:
    # SharedJson: botbuilder's deepcopy of the outgoing activity leaves the card as it is
    await tc.send_activity(MessageFactory.attachment(CardFactory.adaptive_card(SharedJson(card))))


async def answer(tc: TurnContext, response: InvokeResponse) -> None:
    """Answer an invoke from inside the turn (botbuilder returns it as the HTTP response)."""
    await tc.send_activity(Activity(type=ActivityTypes.invoke_response, value=response))
