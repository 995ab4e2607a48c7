"""The Action.Execute verbs shared by the card builders and the dialog flows, and what each
one carries: :data:`SPECS` names, for every verb, the card-data dataclass (cards/data.py) its
buttons carry and its flow parses, and whether the step writes (changes something)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cards import data as d


class Verb(StrEnum):
    # the upgrade journey
    POOLS = "pools"
    POOL_USERS = "pool.users"  # open a pool's users / page through them
    POOL_SEARCH = "pool.search"  # search with the text box
    POOL_PICK = "pool.pick"  # add the user picked in the typeahead to the selection
    POOL_CLEAR = "pool.clear"  # clear the selection
    UPGRADE_TIERS = "upgrade.tiers"
    UPGRADE_QUOTE = "upgrade.quote"  # + input plan
    # every quote's steps
    QUOTE_REFRESH = "quote.refresh"
    QUOTE_CANCEL = "quote.cancel"
    QUOTE_BACK = "quote.back"
    QUOTE_CONFIRM = "quote.confirm"
    # the router's own
    HELP = "help"
    DISMISS = "dismiss"
    # buying
    BUY_START = "buy.start"  # pre-selects a plan
    BUY_ADD = "buy.add"  # + inputs plan, interval, qty
    BUY_CART = "buy.cart"  # the cart card (removing a line sends the cart without it)
    BUY_CHECKOUT = "buy.checkout"  # the purchase quote (qkey: the quote's id, once)
    # assigning
    ASSIGN_START = "assign.start"
    ASSIGN_SEARCH = "assign.search"  # + input q
    ASSIGN_PLANS = "assign.plans"  # + input pick (typeahead) or user (list)
    ASSIGN_SAVE = "assign.save"  # + input to_pool
    # a pool's administration
    POOL_UNASSIGN = "pool.unassign"  # the users card's selection
    UNASSIGN_CONFIRM = "pool.unassign.confirm"
    DOWNGRADE_CHOOSE = "downgrade.choose"  # the users card's selection
    DOWNGRADE_SCHEDULE = "downgrade.schedule"  # + inputs who, plan
    DOWNGRADE_CANCEL = "downgrade.cancel"
    SEATS_REMOVE = "seats.remove"  # the remove-free-seats form (+ input qty when previewed)
    SEATS_REMOVE_CONFIRM = "seats.remove.confirm"  # + input qty
    SEATS_REMOVE_CANCEL = "seats.remove.cancel"
    # upgrade requests (administrators)
    REQUESTS = "requests"  # pending upgrade requests
    REQUEST_REFRESH = "request.refresh"
    REQUEST_APPROVE = "request.approve"
    REQUEST_DECLINE = "request.decline"  # the form asking an optional reason
    REQUEST_DECLINE_CONFIRM = "request.decline_confirm"  # + input reason
    # my license (any user)
    MYLICENSE = "mylicense"
    MYLICENSE_REQUEST = "mylicense.request"  # the form (plan + optional reason)
    MYLICENSE_SEND = "mylicense.send"  # + inputs plan, reason
    # the audit log
    AUDIT = "audit"  # recent changes


class Dataset(StrEnum):
    """Typeahead datasets: ``<dataset>:<reference>``."""

    POOL_USERS = "pool_users"  # "pool_users:<pool id>"
    DIRECTORY = "directory"  # "directory:<account id>"


@dataclass(frozen=True)
class VerbSpec:
    """What a verb's buttons carry (its flow parses it with ``data.parse``), the narrower shapes
    some of its buttons carry instead (``also``: read by ``data.parse`` with the other fields
    empty, e.g. a pool's users opened afresh), and whether its step changes something (a write:
    a double click must be harmless)."""

    data: type[d.CardData]
    writes: bool = False
    also: tuple[type[d.CardData], ...] = ()

    @property
    def shapes(self) -> tuple[type[d.CardData], ...]:
        return (self.data, *self.also)


SPECS: dict[Verb, VerbSpec] = {
    Verb.POOLS: VerbSpec(d.NoData),
    Verb.POOL_USERS: VerbSpec(d.UsersPage, also=(d.PoolRef, d.PoolSelection)),
    Verb.POOL_SEARCH: VerbSpec(d.UsersPage),
    Verb.POOL_PICK: VerbSpec(d.UsersPage),
    Verb.POOL_CLEAR: VerbSpec(d.UsersPage),
    Verb.UPGRADE_TIERS: VerbSpec(d.UsersPage, also=(d.PoolSelection,)),
    Verb.UPGRADE_QUOTE: VerbSpec(d.TierChoice, writes=True),
    Verb.QUOTE_REFRESH: VerbSpec(d.QuoteRef, writes=True),  # (creates the payment link on first show)
    Verb.QUOTE_CANCEL: VerbSpec(d.QuoteRef, writes=True),
    Verb.QUOTE_BACK: VerbSpec(d.QuoteRef, writes=True),
    Verb.QUOTE_CONFIRM: VerbSpec(d.QuoteRef, writes=True),
    Verb.HELP: VerbSpec(d.NoData),
    Verb.DISMISS: VerbSpec(d.NoData),
    Verb.BUY_START: VerbSpec(d.BuyStart),
    Verb.BUY_ADD: VerbSpec(d.Cart),
    Verb.BUY_CART: VerbSpec(d.Cart),
    Verb.BUY_CHECKOUT: VerbSpec(d.Cart, writes=True),
    Verb.ASSIGN_START: VerbSpec(d.PickerPage, also=(d.Origin,)),
    Verb.ASSIGN_SEARCH: VerbSpec(d.Origin),
    Verb.ASSIGN_PLANS: VerbSpec(d.PickerPage, writes=True),  # (a person picked from the directory is added)
    Verb.ASSIGN_SAVE: VerbSpec(d.AssignChoice, writes=True),
    Verb.POOL_UNASSIGN: VerbSpec(d.UsersPage),
    Verb.UNASSIGN_CONFIRM: VerbSpec(d.PoolSelection, writes=True),
    Verb.DOWNGRADE_CHOOSE: VerbSpec(d.UsersPage),
    Verb.DOWNGRADE_SCHEDULE: VerbSpec(d.PoolSelection, writes=True),
    Verb.DOWNGRADE_CANCEL: VerbSpec(d.PoolSelection, writes=True),
    Verb.SEATS_REMOVE: VerbSpec(d.RemovalForm),
    Verb.SEATS_REMOVE_CONFIRM: VerbSpec(d.RemovalConfirm, writes=True),
    Verb.SEATS_REMOVE_CANCEL: VerbSpec(d.PoolRef, writes=True),
    Verb.REQUESTS: VerbSpec(d.PageRef, also=(d.NoData,)),
    Verb.REQUEST_REFRESH: VerbSpec(d.RequestRef),
    Verb.REQUEST_APPROVE: VerbSpec(d.RequestRef, writes=True),
    Verb.REQUEST_DECLINE: VerbSpec(d.RequestRef),
    Verb.REQUEST_DECLINE_CONFIRM: VerbSpec(d.RequestRef, writes=True),
    Verb.MYLICENSE: VerbSpec(d.NoData),
    Verb.MYLICENSE_REQUEST: VerbSpec(d.NoData),
    Verb.MYLICENSE_SEND: VerbSpec(d.NoData, writes=True),
    Verb.AUDIT: VerbSpec(d.PageRef, also=(d.NoData,)),
}
