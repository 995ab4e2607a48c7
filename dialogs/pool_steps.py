"""The steps of a pool's users card that several flows share (the upgrade flow, the pool's
administration): the selection a card action makes, the users page, a step refused for want
of what it needs, and the pool as it is now when a selection went stale. Given by
constructor to the flows that need it (dialogs/flows.py)."""

from __future__ import annotations

from cards import upgrade
from cards.data import MAX_SELECTION, CardDataError, UsersPage, id_list
from cards.i18n import T
from core.errors import DomainError, InvalidInput, Message, StaleSelection
from core.kinds import AuditAction
from core.licensing import Licensing
from core.views import PageKey
from dialogs.base import Recovery, Turn

NO_USER = Message("No user was selected.")
NO_PLAN = Message("No plan was chosen.")


class PoolSteps:
    def __init__(self, lic: Licensing):
        self.lic = lic

    @property
    def recoveries(self) -> dict[type[DomainError], Recovery]:
        """What the flows that use these steps register with the router."""
        return {StaleSelection: self.stale_pool}

    @staticmethod
    def selection(page: UsersPage, inputs: dict, *, with_pick: bool = False) -> list[int]:
        """The selection after this action: kept from other pages, plus what is ticked on this
        one (input ``users``) and, with ``with_pick``, who was picked in the typeahead (``pick``)."""
        page_ids = set(page.ids)
        kept = [i for i in page.sel if i not in page_ids]
        ticked = id_list(inputs.get("users"))
        picked = id_list(inputs.get("pick")) if with_pick else []
        sel = list(dict.fromkeys(kept + [i for i in ticked if i in page_ids or not page_ids] + picked))
        if len(sel) > MAX_SELECTION:
            raise CardDataError(Message("At most {n} users can be selected at once. Select fewer, then do the others "
                                        "in a second round.", n=MAX_SELECTION))
        return sel

    def users_page(self, turn: Turn, pool_id: int, query: str, page: int, sel: list[int],
                   note: str | None = None, *, keyset: PageKey | None = None) -> dict:
        """``keyset``: the row the card's button names (:attr:`UsersPage.keyset`): the page is found
        by it, over the index (else by its number)."""
        with self.lic.units.reading(turn.actor):  # (one snapshot; joins the step's unit if it opened one)
            pool, pg = self.lic.pools.pool_page(turn.actor, pool_id, query=query, page=page, key=keyset)
        return upgrade.pool_users_card(turn.reader, pool, pg, sel, note=note)

    def page_again(self, turn: Turn, page: UsersPage, sel: list[int], note: str | None = None) -> dict:
        """The page a users card's button was clicked on (its search, number and keyset), with ``sel``."""
        return self.users_page(turn, page.pool, page.cq, page.page, sel, note, keyset=page.keyset)

    def refused_step(self, turn: Turn, verb: str, why: Message, pool_id: int, card: dict) -> dict:
        """A step asked without what it needs (no user selected, no plan chosen): the card to
        complete it (built first: a caller with no right gets that refusal instead), and the
        refusal audited."""
        self.lic.audit.record_refusal(turn.actor, AuditAction.card(verb), InvalidInput(why), f"pool:{pool_id}")
        return card

    def no_selection(self, turn: Turn, verb: str, page: UsersPage) -> dict:
        """Nobody selected: the page clicked on again, saying so (the refusal audited)."""
        card = self.page_again(turn, page, [], note=T(turn.reader)("users.empty_selection"))
        return self.refused_step(turn, verb, NO_USER, page.pool, card)

    def stale_pool(self, turn: Turn, data: dict, error: DomainError) -> dict | None:
        """Some selected users lost their seat meanwhile: the pool as it is now, nobody selected."""
        if "pool" not in data:
            return None
        at = UsersPage.parse(data)  # (a selection's narrower shapes read as a page with the other fields empty)
        pool, page = self.lic.pools.pool_page(turn.actor, at.pool, query=at.cq, page=at.page, key=at.keyset)
        return upgrade.pool_users_card(turn.reader, pool, page, [], note=error.message)
