"""The notifier: the core's outbox delivered to Teams.

``lanes`` (the loop: claims, one lane per account, outcomes recorded), ``claims`` (leases and
the group commit of sent ids), ``delivery`` (POSTs and PUTs through the Bot Connector),
``pacing`` (Teams' limits) and ``failures`` (what a connector answer means for the outbox)."""

from bot.notifier.failures import SendFailure, classify, parse_retry_after, retry_delay, retryable
from bot.notifier.lanes import Notifier
from bot.notifier.pacing import ConversationWindows, Pacer

__all__ = ["ConversationWindows", "Notifier", "Pacer", "SendFailure", "classify", "parse_retry_after",
           "retry_delay", "retryable"]
