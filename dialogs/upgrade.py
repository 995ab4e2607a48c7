"""The upgrade flow: pools → a pool's users → tier → quote → paid; and the quote steps that
every quote shares (refresh, cancel, back, confirm)."""

from __future__ import annotations

import uuid

from cards import common, upgrade, verbs
from cards.i18n import Reader, T
from core.errors import InvalidInput, Message, PaymentRefused, PaymentUnavailable
from core.views import QuoteView
from dialogs.base import (
    MAX_SELECTION,
    CardDataError,
    CommandSpec,
    Flow,
    Turn,
    data_int,
    id_list,
    page_of,
    text_of,
)

NO_USER = Message("No user was selected.")
NO_PLAN = Message("No plan was chosen.")


class UpgradeFlow(Flow):
    def __init__(self, router):
        super().__init__(router)
        self.commands = {
            "licenses": CommandSpec(self.cmd_licenses, True),
        }
        self.actions = {
            verbs.POOLS: self.pools,
            verbs.POOL_USERS: self.pool_users,
            verbs.POOL_SEARCH: self.pool_search,
            verbs.POOL_PICK: self.pool_pick,
            verbs.POOL_CLEAR: self.pool_clear,
            verbs.UPGRADE_TIERS: self.tiers,
            verbs.UPGRADE_QUOTE: self.quote,
            verbs.QUOTE_REFRESH: self.quote_refresh,
            verbs.QUOTE_CANCEL: self.quote_cancel,
            verbs.QUOTE_BACK: self.quote_back,
            verbs.QUOTE_CONFIRM: self.quote_confirm,
        }
        self.searches = {verbs.DATASET_POOL_USERS: self.search_pool_users}
        self.notifications = {"license_upgraded": self.upgraded_notice}
        self.card_updates = {"quote_card": self.quote_card_update}

    # ------------------------------------------------------------------ pools and users

    def cmd_licenses(self, turn: Turn) -> dict:
        return self.pools(turn, {})

    def pools(self, turn: Turn, data: dict, note: str | None = None) -> dict:
        caller, pools = self.lic.pools.pools_overview(turn.actor)  # (one transaction)
        return upgrade.pools_card(turn.reader, caller.account_name, pools, note=note)

    def selection(self, data: dict) -> list[int]:
        """The selection after this action: kept from other pages, plus what is ticked on this one."""
        page_ids = set(id_list(data.get("ids")))
        kept = [i for i in id_list(data.get("sel")) if i not in page_ids]
        ticked = id_list(data.get("users"))
        picked = id_list(data.get("pick")) if data.get("_with_pick") else []
        sel = list(dict.fromkeys(kept + [i for i in ticked if i in page_ids or not page_ids] + picked))
        if len(sel) > MAX_SELECTION:
            raise CardDataError(Message("At most {n} users can be selected at once. Select fewer, then do the others "
                                        "in a second round.", n=MAX_SELECTION))
        return sel

    def users_page(self, turn: Turn, pool_id: int, query: str, page: int, sel: list[int],
                   note: str | None = None) -> dict:
        with self.lic.units.reading(turn.actor):  # (one snapshot; joins the step's unit if it opened one)
            pool, pg = self.lic.pools.pool_page(turn.actor, pool_id, query=query, page=page)
        return upgrade.pool_users_card(turn.reader, pool, pg, sel, note=note)

    def pool_users(self, turn: Turn, data: dict) -> dict:
        pool_id = data_int(data, "pool", "pool")
        return self.users_page(turn, pool_id, text_of(data, "cq"), page_of(data), self.selection(data))

    def pool_search(self, turn: Turn, data: dict) -> dict:
        pool_id = data_int(data, "pool", "pool")
        return self.users_page(turn, pool_id, text_of(data, "q"), 0, self.selection(data))

    def pool_pick(self, turn: Turn, data: dict) -> dict:
        pool_id = data_int(data, "pool", "pool")
        sel = self.selection(dict(data, _with_pick=True))
        return self.users_page(turn, pool_id, text_of(data, "cq"), page_of(data), sel)

    def pool_clear(self, turn: Turn, data: dict) -> dict:
        pool_id = data_int(data, "pool", "pool")
        return self.users_page(turn, pool_id, text_of(data, "cq"), page_of(data), [])

    def stale_pool(self, turn: Turn, data: dict, message: str) -> dict:
        pool, page = self.lic.pools.pool_page(turn.actor, data["pool"], query=text_of(data, "cq"), page=page_of(data))
        return upgrade.pool_users_card(turn.reader, pool, page, [], note=message)

    def search_pool_users(self, turn: Turn, ref: str, query: str, skip: int, top: int) -> list[dict]:
        pool_id = int(ref)
        page = self.lic.pools.pool_users(turn.actor, pool_id, query=query, page=skip // top, page_size=top)
        return [{"title": f"{u.name} — {u.email}", "value": str(u.id)} for u in page.items]

    # ------------------------------------------------------------------ tier and quote

    def refused_step(self, turn: Turn, verb: str, why: Message, pool_id: int, card: dict) -> dict:
        """A step asked without what it needs (no user selected, no plan chosen): the card to
        complete it (built first: a caller with no right gets that refusal instead), and the
        refusal audited."""
        self.lic.audit.record_refusal(turn.actor, f"card.{verb}", InvalidInput(why), f"pool:{pool_id}")
        return card

    def tiers(self, turn: Turn, data: dict, note: str | None = None) -> dict:
        pool_id = data_int(data, "pool", "pool")
        sel = self.selection(data)
        if not sel:
            return self.refused_step(turn, verbs.UPGRADE_TIERS, NO_USER, pool_id, self.users_page(
                turn, pool_id, text_of(data, "cq"), page_of(data), [], note=T(turn.reader)("users.empty_selection")))
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            options = self.lic.quotes.upgrade_options(turn.actor, pool_id, sel)
            pool = self.lic.pools.pool(turn.actor, pool_id)
            users = self.lic.accounts.directory_rows(turn.actor, sel[: upgrade.MAX_NAMES])
        return upgrade.tiers_card(turn.reader, pool, users, len(sel), options, sel, key=uuid.uuid4().hex, note=note)

    def quote(self, turn: Turn, data: dict) -> dict:
        pool_id = data_int(data, "pool", "pool")
        sel = id_list(data.get("sel"))
        if not sel:
            return self.refused_step(turn, verbs.UPGRADE_QUOTE, NO_USER, pool_id, self.users_page(
                turn, pool_id, "", 0, [], note=T(turn.reader)("users.empty_selection")))
        plan = data.get("plan")
        if not isinstance(plan, str) or not plan.strip():
            return self.refused_step(turn, verbs.UPGRADE_QUOTE, NO_PLAN, pool_id, self.tiers(
                turn, {"pool": pool_id, "sel": sel}, note=T(turn.reader)("tiers.missing")))
        key = data.get("qkey")
        started = self.lic.now()
        quote = self.lic.quotes.quote_upgrade(turn.actor, pool_id, sel, plan.strip(),
                                       quote_id=key if isinstance(key, str) else None)
        note = None
        if quote.created_at < started or quote.status != "open":  # a second click of the same card
            note = T(turn.reader)("tiers.already")
        return self.show_quote(turn, quote.id, note=note, view=quote)

    def show_quote(self, turn: Turn, quote_id: str, note: str | None = None, *,
                   view: QuoteView | None = None) -> dict:
        """The quote card (any kind), with its payment link created on first show, and the card
        remembered so that it can be updated in place once paid (with the link, in one
        transaction, when the link is created now). ``view``: the quote as just written (the
        quote is not read again)."""
        with self.lic.units.reading(turn.actor):  # (the quote and whom its card is kept live for, together)
            q = view if view is not None else self.lic.quotes.quote(turn.actor, quote_id)
            admins = self.admins(q.account_id)
        posted = (turn.message_ref, turn.address) if turn.message_ref and turn.address else None
        if q.status == "open" and q.due_now > 0 and not q.payment_url:
            try:  # (outside any unit: it calls the payment provider between its transactions)
                q = self.lic.links.payment_link(turn.actor, q.id, posted_card=posted)
                posted = None  # remembered by payment_link
            except (PaymentUnavailable, PaymentRefused) as e:
                note = e.message
        if posted:
            self.lic.addresses.record_posted_card(q.account_id, "quote", q.id, *posted)
        turn.shows("quote", q.id)
        return upgrade.quote_card(turn.reader, q, note=note, admins=admins)

    @staticmethod
    def quote_id(data: dict) -> str:
        qid = data.get("quote")
        if not isinstance(qid, str) or not qid:
            raise CardDataError(Message("This card does not name a quote. Start again from the license pools."))
        return qid[:64]

    def quote_refresh(self, turn: Turn, data: dict) -> dict:
        return self.show_quote(turn, self.quote_id(data))

    def quote_cancel(self, turn: Turn, data: dict) -> dict:
        q = self.lic.quotes.cancel_quote(turn.actor, self.quote_id(data))
        t = T(turn.reader)
        closing = q.payment_status == "closing"  # not "nothing was charged" until the provider confirms
        return common.dismissed_card(turn.reader, t("cancelled.title"), t("cancelled.closing" if closing
                                                                         else "cancelled.body"))

    def quote_back(self, turn: Turn, data: dict) -> dict:
        """The quote cancelled (committed at once: its card's update is held by the router until
        this answers), then the step before it, read in one snapshot."""
        q = self.lic.quotes.cancel_quote(turn.actor, self.quote_id(data))
        if q.kind == "purchase" and "buy.cart" in self.router.actions:
            lines = [{"plan": ln.plan_code, "interval": ln.interval, "quantity": ln.quantity} for ln in q.lines]
            return self.router.actions["buy.cart"](turn, {"cart": lines})
        return self.tiers(turn, {"pool": q.pool_id, "sel": [u.id for u in q.users]})

    def quote_confirm(self, turn: Turn, data: dict) -> dict:
        def step() -> dict:
            q = self.lic.quotes.confirm_without_payment(turn.actor, self.quote_id(data))
            turn.shows("quote", q.id)
            return upgrade.quote_card(turn.reader, q, admins=self.admins(q.account_id))

        return self.lic.units.writing(turn.actor, step)

    # ------------------------------------------------------------------ notifications

    def upgraded_notice(self, item, locale: Reader | str | None) -> dict:
        p = item.payload
        return upgrade.upgraded_notice(locale, self.lic.plan_views.plan_name(p.get("to_plan")),
                                       self.lic.plan_views.plan_name(p.get("from_plan")))

    def quote_card_update(self, item, locale: Reader | str | None) -> dict | None:
        q = self.lic.quotes.quote_snapshot(item.payload.get("quote_id") or "")
        return upgrade.quote_card(locale, q, admins=self.admins(q.account_id)) if q else None
