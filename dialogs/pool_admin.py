"""A pool's administration: remove free seats at renewal (and cancel that), unassign the users
selected in the pool's users card, schedule a downgrade at renewal for them or for the whole
pool (and cancel it); and the notices the users receive.

Every step re-reads the pool through the core (which checks the caller and the account); a
step asked without what it needs gets the card to complete it, and the refusal is audited."""

from __future__ import annotations

from datetime import datetime

from cards import pool_admin
from cards.data import PoolRef, PoolSelection, RemovalConfirm, RemovalForm, UsersPage
from cards.i18n import Reader, T
from cards.verbs import Verb
from core.errors import DomainError, InvalidInput, Message, NotAdmin, NotFound, UnknownCaller, no_longer_held
from core.kinds import AuditAction, OutboxKind
from core.licensing import Licensing
from core.text import parse_quantity
from core.views import PageKey
from dialogs.base import MAX_SELECTION, CardDataError, Flow, Turn
from dialogs.pool_steps import NO_PLAN, PoolSteps

PAGE = 50  # users read per query when collecting a whole pool


class PoolAdminFlow(Flow):
    def __init__(self, lic: Licensing, pool_steps: PoolSteps):
        super().__init__(lic)
        self.steps = pool_steps
        self.actions = {
            Verb.SEATS_REMOVE: self.removal_form,
            Verb.SEATS_REMOVE_CONFIRM: self.remove,
            Verb.SEATS_REMOVE_CANCEL: self.cancel_removal,
            Verb.POOL_UNASSIGN: self.unassign_confirm,
            Verb.UNASSIGN_CONFIRM: self.unassign,
            Verb.DOWNGRADE_CHOOSE: self.downgrade_choose,
            Verb.DOWNGRADE_SCHEDULE: self.downgrade_schedule,
            Verb.DOWNGRADE_CANCEL: self.downgrade_cancel,
        }
        self.notifications = {
            OutboxKind.LICENSE_UNASSIGNED: self.unassigned_notice,
            OutboxKind.DOWNGRADE_SCHEDULED: self.downgrade_scheduled_notice,
            OutboxKind.DOWNGRADE_CANCELLED: self.downgrade_cancelled_notice,
            OutboxKind.DOWNGRADE_APPLIED: self.downgrade_applied_notice,
        }
        self.recoveries = pool_steps.recoveries

    def refused(self, turn: Turn, verb: str, why: Message, pool_id: int, card: dict) -> dict:
        return self.steps.refused_step(turn, verb, why, pool_id, card)

    def selected_rows(self, turn: Turn, verb: str, pool_id: int, sel: list[int]):
        """The selected users with their seat in the pool; None (and the refusal audited) when
        some of them no longer hold one: the caller then shows the pool as it is now."""
        rows = self.lic.pools.pool_rows(turn.actor, pool_id, sel)
        if len(rows) == len(sel):
            return rows, None
        message = no_longer_held(len(sel) - len(rows))
        page = self.steps.users_page(turn, pool_id, "", 0, [], note=message)
        return None, self.refused(turn, verb, message, pool_id, page)

    # ------------------------------------------------------------------ removing free seats

    def form(self, turn: Turn, pool_id: int, *, typed: bool = False, quantity=None, note: str | None = None) -> dict:
        """The removal form; when a quantity was ``typed``, the renewal amount after removing it.
        A quantity the core refuses is audited there and said on the form."""
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card; joins the step's unit)
            pool = self.lic.pools.pool(turn.actor, pool_id)
            n, preview = 1, None
            if typed:
                try:
                    preview = self.lic.seats.preview_removal(turn.actor, pool.id, quantity)
                    n = parse_quantity(quantity)
                except (NotAdmin, UnknownCaller, NotFound):
                    raise
                except DomainError as e:
                    note = e.message
            if preview is None and pool.assignable > 0:
                preview = self.lic.seats.preview_removal(turn.actor, pool.id, 1)
        return pool_admin.removal_form(turn.reader, pool, quantity=n, preview=preview, note=note)

    def removal_form(self, turn: Turn, data: dict) -> dict:
        asked = RemovalForm.parse(data)
        typed = "qty" in data or asked.preview is True  # (qty: the form's input)
        return self.form(turn, asked.pool, typed=typed, quantity=data.get("qty"))

    def remove(self, turn: Turn, data: dict) -> dict:
        confirmed = RemovalConfirm.parse(data)
        pool_id, expected = confirmed.pool, confirmed.scheduled

        def step() -> dict:  # (one write transaction: a refusal, then the form as it is now)
            try:
                pool = self.lic.seats.remove_seats(turn.actor, pool_id, data.get("qty"), expected_scheduled=expected)
            except (NotAdmin, UnknownCaller, NotFound):
                raise
            except DomainError as e:  # audited by the core; nothing changed
                return self.form(turn, pool_id, note=e.message)
            return pool_admin.removal_done(turn.reader, pool, parse_quantity(data.get("qty")))

        return self.lic.units.writing(turn.actor, step)

    def cancel_removal(self, turn: Turn, data: dict) -> dict:
        pool_id = PoolRef.parse(data).pool
        pool = self.lic.pools.pool(turn.actor, pool_id)
        if not pool.removal_scheduled:
            why = Message("No seat of this pool is scheduled to leave at renewal: there is nothing to cancel.")
            self.lic.audit.record_refusal(turn.actor, AuditAction.card(Verb.SEATS_REMOVE_CANCEL), InvalidInput(why),
                                          f"pool:{pool.id}")
            return self.form(turn, pool.id, note=why)
        return pool_admin.removal_cancelled(turn.reader, self.lic.seats.cancel_removal(turn.actor, pool.id))

    # ------------------------------------------------------------------ unassigning

    def unassign_confirm(self, turn: Turn, data: dict) -> dict:
        page = UsersPage.parse(data)
        pool_id = page.pool
        sel = self.steps.selection(page, data)
        if not sel:
            return self.steps.no_selection(turn, Verb.POOL_UNASSIGN, page)
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            rows, stale = self.selected_rows(turn, Verb.POOL_UNASSIGN, pool_id, sel)
            if stale:
                return stale
            pool = self.lic.pools.pool(turn.actor, pool_id)
            return pool_admin.unassign_confirm(turn.reader, pool, rows, [u.id for u in rows])

    def unassign(self, turn: Turn, data: dict) -> dict:
        chosen = PoolSelection.parse(data)
        pool_id, sel = chosen.pool, list(chosen.sel)
        if not sel:
            return self.steps.no_selection(turn, Verb.UNASSIGN_CONFIRM, UsersPage(pool_id))
        if len(sel) > MAX_SELECTION:
            raise CardDataError(Message("At most {n} users can be unassigned at once.", n=MAX_SELECTION))
        pool = self.lic.seats.unassign(turn.actor, pool_id, sel)
        return pool_admin.unassign_done(turn.reader, pool, len(sel))

    # ------------------------------------------------------------------ downgrades

    def downgrade_view(self, turn: Turn, pool_id: int, sel: list[int], rows, note: str | None = None) -> dict:
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            pool = self.lic.pools.pool(turn.actor, pool_id)
            options = self.lic.downgrades.downgrade_options(turn.actor, pool_id)
        return pool_admin.downgrade_card(turn.reader, pool, rows, sel, options, pool_total=pool.assigned,
                                         max_users=MAX_SELECTION, note=note)

    def downgrade_choose(self, turn: Turn, data: dict) -> dict:
        """The users card's selection (or, with nobody selected, the whole pool if it is small
        enough) → the lower plan to move to at renewal."""
        page = UsersPage.parse(data)
        pool_id = page.pool
        sel = self.steps.selection(page, data)
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            if not sel:
                pool = self.lic.pools.pool(turn.actor, pool_id)
                if not 0 < pool.assigned <= MAX_SELECTION:
                    return self.steps.no_selection(turn, Verb.DOWNGRADE_CHOOSE, page)
                return self.downgrade_view(turn, pool_id, [], [])
            rows, stale = self.selected_rows(turn, Verb.DOWNGRADE_CHOOSE, pool_id, sel)
            if stale:
                return stale
            return self.downgrade_view(turn, pool_id, [u.id for u in rows], rows)

    def whole_pool(self, turn: Turn, pool_id: int) -> list[int]:
        pool = self.lic.pools.pool(turn.actor, pool_id)
        if pool.assigned > MAX_SELECTION:
            raise CardDataError(Message("This pool has {total} users: at most {n} can be downgraded at once. Select "
                                        "them in the pool's users card, in several rounds.", total=pool.assigned,
                                        n=MAX_SELECTION))
        ids: list[int] = []
        page, after = 0, None
        while True:  # (each page after the last row of the one before: keyset paging)
            pg = self.lic.pools.pool_users(turn.actor, pool_id, page=page, page_size=PAGE, key=after)
            ids += [u.id for u in pg.items]
            if not pg.has_next or len(ids) >= MAX_SELECTION or pg.last_key is None:
                return ids[:MAX_SELECTION]
            page, after = page + 1, PageKey("after", pg.last_key)

    def downgrade_schedule(self, turn: Turn, data: dict) -> dict:
        chosen = PoolSelection.parse(data)
        pool_id, sel = chosen.pool, list(chosen.sel)
        if len(sel) > MAX_SELECTION:
            raise CardDataError(Message("At most {limit:,} users can be selected at once.", limit=MAX_SELECTION))
        who = data.get("who") or ("sel" if sel else "pool")
        if who not in ("sel", "pool"):
            raise CardDataError(Message("Choose whom to downgrade: the selected users or the whole pool."))
        plan = data.get("plan")
        if not isinstance(plan, str) or not plan.strip():
            rows = self.lic.pools.pool_rows(turn.actor, pool_id, sel) if sel else []
            why = T(turn.reader)("pool_admin.downgrade.missing")
            return self.refused(turn, Verb.DOWNGRADE_SCHEDULE, NO_PLAN, pool_id,
                                self.downgrade_view(turn, pool_id, sel, rows, note=why))
        if who == "sel" and not sel:
            return self.steps.no_selection(turn, Verb.DOWNGRADE_SCHEDULE, UsersPage(pool_id))
        users = sel if who == "sel" else self.whole_pool(turn, pool_id)
        if not users:
            return self.steps.no_selection(turn, Verb.DOWNGRADE_SCHEDULE, UsersPage(pool_id))
        pool = self.lic.downgrades.schedule_downgrade(turn.actor, pool_id, users, plan.strip())
        return pool_admin.downgrade_done(turn.reader, pool, self.lic.plan_views.plan_name(plan.strip()), users)

    def downgrade_cancel(self, turn: Turn, data: dict) -> dict:
        chosen = PoolSelection.parse(data)
        pool_id, sel = chosen.pool, list(chosen.sel)
        if not sel:
            return self.steps.no_selection(turn, Verb.DOWNGRADE_CANCEL, UsersPage(pool_id))
        if len(sel) > MAX_SELECTION:
            raise CardDataError(Message("At most {limit:,} users can be selected at once.", limit=MAX_SELECTION))

        def step() -> dict:  # (one write transaction: who had a downgrade, and its cancelling)
            had = sum(1 for u in self.lic.pools.pool_rows(turn.actor, pool_id, sel) if u.downgrade_to)
            pool = self.lic.downgrades.cancel_downgrade(turn.actor, pool_id, sel)
            return pool_admin.downgrade_cancelled(turn.reader, pool, had)

        return self.lic.units.writing(turn.actor, step)

    # ------------------------------------------------------------------ notifications

    def unassigned_notice(self, item, locale: Reader | str | None) -> dict:
        p = item.payload
        return pool_admin.unassigned_notice(locale, self.lic.plan_views.plan_name(p.get("plan")),
                                            str(p.get("by") or ""))

    def downgrade_scheduled_notice(self, item, locale: Reader | str | None) -> dict | None:
        p = item.payload
        when = _when(p.get("effective"))
        if when is None:
            return None
        return pool_admin.downgrade_scheduled_notice(locale, self.lic.plan_views.plan_name(p.get("from_plan")),
                                                     self.lic.plan_views.plan_name(p.get("to_plan")), when)

    def downgrade_cancelled_notice(self, item, locale: Reader | str | None) -> dict:
        return pool_admin.downgrade_cancelled_notice(locale, self.lic.plan_views.plan_name(item.payload.get("plan")))

    def downgrade_applied_notice(self, item, locale: Reader | str | None) -> dict | None:
        p = item.payload
        when = _when(p.get("effective"))
        if when is None:
            return None
        return pool_admin.downgrade_applied_notice(locale, self.lic.plan_views.plan_name(p.get("from_plan")),
                                                   self.lic.plan_views.plan_name(p.get("to_plan")), when)


def _when(value) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
