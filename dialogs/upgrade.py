"""The upgrade flow: pools → a pool's users → tier → quote (shown and handled by the shared
quote steps, dialogs/quotes.py) → paid."""

from __future__ import annotations

import uuid

from cards import upgrade
from cards.data import PoolSelection, TierChoice, UsersPage, text_of
from cards.i18n import Reader, T
from cards.verbs import Dataset, Verb
from core.kinds import OutboxKind, QuoteKind, QuoteStatus
from core.licensing import Licensing
from core.views import QuoteView
from dialogs.base import CommandSpec, Flow, Turn
from dialogs.pool_steps import NO_PLAN, NO_USER, PoolSteps
from dialogs.quotes import QuoteFlow

__all__ = ["NO_PLAN", "NO_USER", "UpgradeFlow"]


class UpgradeFlow(Flow):
    def __init__(self, lic: Licensing, pool_steps: PoolSteps, quotes: QuoteFlow):
        super().__init__(lic)
        self.steps = pool_steps
        self.quotes = quotes
        quotes.on_back(QuoteKind.UPGRADE, self.back_from_quote)
        self.commands = {
            "licenses": CommandSpec(self.cmd_licenses, True),
        }
        self.actions = {
            Verb.POOLS: self.pools,
            Verb.POOL_USERS: self.pool_users,
            Verb.POOL_SEARCH: self.pool_search,
            Verb.POOL_PICK: self.pool_pick,
            Verb.POOL_CLEAR: self.pool_clear,
            Verb.UPGRADE_TIERS: self.tiers,
            Verb.UPGRADE_QUOTE: self.quote,
        }
        self.searches = {Dataset.POOL_USERS: self.search_pool_users}
        self.notifications = {OutboxKind.LICENSE_UPGRADED: self.upgraded_notice}
        self.recoveries = pool_steps.recoveries

    # ------------------------------------------------------------------ pools and users

    def cmd_licenses(self, turn: Turn) -> dict:
        return self.pools(turn, {})

    def pools(self, turn: Turn, data: dict, note: str | None = None) -> dict:
        caller, pools = self.lic.pools.pools_overview(turn.actor)  # (one transaction)
        return upgrade.pools_card(turn.reader, caller.account_name, pools, note=note)

    def pool_users(self, turn: Turn, data: dict) -> dict:
        page = UsersPage.parse(data)
        return self.steps.page_again(turn, page, self.steps.selection(page, data))

    def pool_search(self, turn: Turn, data: dict) -> dict:
        page = UsersPage.parse(data)
        return self.steps.users_page(turn, page.pool, text_of(data, "q"), 0, self.steps.selection(page, data))

    def pool_pick(self, turn: Turn, data: dict) -> dict:
        page = UsersPage.parse(data)
        sel = self.steps.selection(page, data, with_pick=True)
        return self.steps.page_again(turn, page, sel)

    def pool_clear(self, turn: Turn, data: dict) -> dict:
        page = UsersPage.parse(data)
        return self.steps.page_again(turn, page, [])

    def search_pool_users(self, turn: Turn, ref: str, query: str, skip: int, top: int) -> list[dict]:
        pool_id = int(ref)
        page = self.lic.pools.pool_users(turn.actor, pool_id, query=query, page=skip // top, page_size=top)
        return [{"title": f"{u.name} — {u.email}", "value": str(u.id)} for u in page.items]

    # ------------------------------------------------------------------ tier and quote

    def tiers(self, turn: Turn, data: dict, note: str | None = None) -> dict:
        page = UsersPage.parse(data)
        sel = self.steps.selection(page, data)
        if not sel:
            return self.steps.no_selection(turn, Verb.UPGRADE_TIERS, page)
        return self.tiers_card(turn, PoolSelection(page.pool, tuple(sel)), note=note)

    def tiers_card(self, turn: Turn, chosen: PoolSelection, note: str | None = None) -> dict:
        sel = list(chosen.sel)
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            options = self.lic.quotes.upgrade_options(turn.actor, chosen.pool, sel)
            pool = self.lic.pools.pool(turn.actor, chosen.pool)
            users = self.lic.accounts.directory_rows(turn.actor, sel[: upgrade.MAX_NAMES])
        return upgrade.tiers_card(turn.reader, pool, users, len(sel), options, sel, key=uuid.uuid4().hex, note=note)

    def quote(self, turn: Turn, data: dict) -> dict:
        choice = TierChoice.parse(data)
        sel = self.steps.selection(UsersPage(choice.pool, sel=choice.sel), {})  # (at most MAX_SELECTION)
        if not sel:
            return self.steps.no_selection(turn, Verb.UPGRADE_QUOTE, UsersPage(choice.pool))
        plan = data.get("plan")
        if not isinstance(plan, str) or not plan.strip():
            return self.steps.refused_step(turn, Verb.UPGRADE_QUOTE, NO_PLAN, choice.pool, self.tiers_card(
                turn, PoolSelection(choice.pool, tuple(sel)), note=T(turn.reader)("tiers.missing")))
        started = self.lic.now()
        created = self.quotes.create(turn, lambda: self.lic.quotes.quote_upgrade(
            turn.actor, choice.pool, sel, plan.strip(), quote_id=choice.qkey))
        quote = created.quote
        note = None
        if quote.created_at < started or quote.status != QuoteStatus.OPEN:  # a second click of the same card
            note = T(turn.reader)("tiers.already")
        return self.quotes.show_quote(turn, quote.id, note=note, created=created)

    def back_from_quote(self, turn: Turn, q: QuoteView) -> dict:
        """Back from an upgrade quote: its tier step, for the same users."""
        assert q.pool_id is not None, "an upgrade quote is of one pool"
        return self.tiers_card(turn, PoolSelection(q.pool_id, tuple(u.id for u in q.users)))

    # ------------------------------------------------------------------ notifications

    def upgraded_notice(self, item, locale: Reader | str | None) -> dict:
        p = item.payload
        return upgrade.upgraded_notice(locale, self.lic.plan_views.plan_name(p.get("to_plan")),
                                       self.lic.plan_views.plan_name(p.get("from_plan")))
