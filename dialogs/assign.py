"""The assign flow: find a user (the account's users, and the tenant's directory through
Microsoft Graph when enabled) → a plan with a free seat → Save; the user is told in Teams.

The directory is optional and injected by constructor (built by ``bootstrap.py`` when
GRAPH_ENABLED; ``None`` otherwise) with ``search(tenant_id, query, top)`` and
``person(tenant_id, aad_object_id)``, both returning objects with ``aad_object_id``,
``name`` and ``email``. It is only ever asked by an administrator's turn; when it fails, the
picker still shows the account's users, with a one-line note."""

from __future__ import annotations

import logging
import re

from cards import assign as cards
from cards import common
from cards.base import execute
from cards.data import AssignChoice, Origin, PickerPage, PoolRef
from cards.i18n import Reader, T
from cards.verbs import Dataset, Verb
from core.errors import DomainNotApproved, InvalidInput, Message, NoFreeSeat, SeatAlreadyHeld
from core.kinds import AuditAction, OutboxKind
from core.licensing import Licensing
from core.views import PoolView, UserRow
from dialogs.base import CardDataError, CommandSpec, Flow, Turn, data_int, text_of

log = logging.getLogger(__name__)

PICKER_PAGE = 15  # account users per page
DIRECTORY_TOP = 5  # directory people added to the first page of a search
_OBJECT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class AssignFlow(Flow):
    def __init__(self, lic: Licensing, directory=None):
        super().__init__(lic)
        self.directory = directory  # the tenant's directory (Graph), or None
        self.commands = {
            "assign": CommandSpec(self.cmd_assign, True),
        }
        self.actions = {
            Verb.ASSIGN_START: self.start,
            Verb.ASSIGN_SEARCH: self.search,
            Verb.ASSIGN_PLANS: self.plans,
            Verb.ASSIGN_SAVE: self.save,
        }
        self.searches = {Dataset.DIRECTORY: self.typeahead}
        self.notifications = {OutboxKind.LICENSE_ASSIGNED: self.assigned_notice}

    def plan_names(self) -> dict[str, str]:
        return {p.code: p.name for p in self.lic.plan_views.plans()}

    # ------------------------------------------------------------------ step 1: the user

    def cmd_assign(self, turn: Turn) -> dict:
        return self.start(turn, {})

    @staticmethod
    def origin(data: dict) -> int | None:
        """The pool the journey started from (pre-selects its plan), if any."""
        return Origin.parse(data).pool

    @staticmethod
    def back_data(data: dict, origin: int | None) -> PickerPage:
        kept = PickerPage.parse(data)
        return PickerPage(kept.cq, kept.page, origin)

    @staticmethod
    def kept(data: dict) -> tuple[str, int]:
        """The picker's search and page the card carries (shown again by Back and by a refusal)."""
        back = PickerPage.parse(data)
        return back.cq, back.page

    def directory_people(self, turn: Turn, query: str, top: int) -> tuple[list[cards.DirectoryChoice], bool,
                                                                            int | None]:
        """People of the tenant's directory matching ``query`` who are not users of the account
        yet; whether the directory failed; and, when it is throttled (busy), for how many more
        seconds (the directory's error tells it as ``retry_after``)."""
        directory = self.directory
        if directory is None or not query.strip():
            return [], False, None
        try:
            found = directory.search(turn.actor.tenant_id, query, top)
        except Exception as e:  # noqa: BLE001 - any failure of the directory: the account's users only
            log.warning("directory search failed: %s", e)
            return [], True, getattr(e, "retry_after", None)
        known = self.lic.accounts.users_by_aad(turn.actor, [p.aad_object_id for p in found])
        return [cards.DirectoryChoice(p.aad_object_id, p.name, p.email) for p in found
                if p.aad_object_id not in known], False, None

    def picker(self, turn: Turn, data: dict, query: str, page: int, note: str | None = None) -> dict:
        with self.lic.units.reading(turn.actor):  # (one snapshot; the tenant's directory is asked after it)
            caller = self.lic.accounts.require_admin(turn.actor, AuditAction.ASSIGN_START)
            origin = self.origin(data)
            pool = self.lic.pools.pool(turn.actor, origin) if origin is not None else None
            pg = self.lic.accounts.directory(turn.actor, query=query, page=page, page_size=PICKER_PAGE)
            if page and not pg.items and pg.total:
                pg = self.lic.accounts.directory(turn.actor, query=query, page=pg.pages - 1, page_size=PICKER_PAGE)
        people, down, busy = (self.directory_people(turn, pg.query, DIRECTORY_TOP) if pg.page == 0
                              else ([], False, None))
        return cards.picker_card(turn.reader, pg, people, self.plan_names(), pool=pool, note=note,
                                 dataset=f"{Dataset.DIRECTORY}:{caller.account_id}",
                                 graph=self.directory is not None, graph_down=down, graph_busy=busy)

    def start(self, turn: Turn, data: dict) -> dict:
        back = PickerPage.parse(data)
        return self.picker(turn, data, back.cq, back.page)

    def search(self, turn: Turn, data: dict) -> dict:
        return self.picker(turn, data, text_of(data, "q"), 0)

    def typeahead(self, turn: Turn, ref: str, query: str, skip: int, top: int) -> list[dict]:
        caller = self.lic.accounts.require_admin(turn.actor, AuditAction.ASSIGN_SEARCH)
        if int(ref) != caller.account_id:
            return []
        query = query[:100]
        people = self.directory_people(turn, query, min(DIRECTORY_TOP, top))[0] if skip == 0 else []
        pg = self.lic.accounts.directory(turn.actor, query=query, page=skip // top, page_size=top)
        users = pg.items[: max(0, top - len(people))]
        return [{"title": title, "value": value}
                for title, value in cards.user_choices(turn.reader, users, people, self.plan_names())]

    # ------------------------------------------------------------------ step 2: the plan

    def plans(self, turn: Turn, data: dict) -> dict:
        picked = data.get("pick") or data.get("user")
        if isinstance(picked, bool) or not isinstance(picked, str | int) or picked in ("", 0):
            card = self.picker(turn, data, *self.kept(data),
                               note=T(turn.reader)("assign.pick_first"))  # built first: no right, no card
            self.lic.audit.record_refusal(turn.actor, AuditAction.card(Verb.ASSIGN_PLANS),
                                          InvalidInput(Message("No user was chosen.")))
            return card
        picked = str(picked).strip()
        if picked.startswith(cards.DIRECTORY_PREFIX):
            user = self.from_directory(turn, data, picked[len(cards.DIRECTORY_PREFIX):].lower())
            if isinstance(user, dict):
                return user  # a card: the person could not be added
        else:
            user = self.lic.accounts.directory_user(turn.actor, data_int({"user": picked}, "user", "user"))
        return self.plans_step(turn, user, data)

    def from_directory(self, turn: Turn, data: dict, aad: str) -> UserRow | dict:
        """A person picked from the tenant's directory: read again from the directory (the card
        is not trusted), then added to the account if their e-mail domain is approved."""
        self.lic.accounts.require_admin(turn.actor, AuditAction.card(Verb.ASSIGN_PLANS))
        directory = self.directory
        if directory is None or not _OBJECT_ID.match(aad):
            raise CardDataError(Message("That person cannot be picked here. Search again and choose someone from the "
                                        "list."))
        try:
            person = directory.person(turn.actor.tenant_id, aad)
        except Exception as e:  # noqa: BLE001 - the directory failed: say so, change nothing
            log.warning("directory lookup failed: %s", e)
            t = T(turn.reader)
            busy = getattr(e, "retry_after", None)
            card = self.picker(turn, data, *self.kept(data),
                               note=cards.directory_busy(turn.reader, busy) if busy else t("assign.directory_down"))
            self.lic.audit.record_refusal(turn.actor, AuditAction.card(Verb.ASSIGN_PLANS),
                                          InvalidInput(Message("The organisation's directory could not be read.")),
                                          f"aad:{aad}")
            return card
        if person is None:
            raise CardDataError(Message("That person is not in your organisation's directory any more. Search again."))
        try:
            row = self.lic.accounts.add_user(turn.actor, person.aad_object_id, person.email, person.name)
        except DomainNotApproved as e:  # audited by the core
            return self.picker(turn, data, *self.kept(data), note=e.message)
        return self.lic.accounts.directory_user(turn.actor, row.id)

    def plans_step(self, turn: Turn, user: UserRow, data: dict, *, note: str | None = None,
                   buy: dict | None = None) -> dict:
        t = T(turn.reader)
        origin = self.origin(data)
        pools = self.lic.pools.list_pools(turn.actor)
        if origin is not None and origin not in {p.id for p in pools}:
            self.lic.pools.pool(turn.actor, origin)  # another account's pool: refused
        plans = self.lic.plan_views.plans()
        family_of = {p.code: p.family for p in plans}
        held = {family_of.get(c) for c in (user.plan_code or "").split(",") if c}
        eligible = [p for p in pools if p.assignable > 0 and p.family not in held]
        free_families = {p.family for p in plans} - held
        reason = None
        if not eligible:
            reason = t("assign.plans.no_free" if free_families else "assign.plans.all_held", name=user.name)
            if buy is None and free_families:
                buy = self.wanted(pools, origin, held)
        return cards.plans_card(turn.reader, user, eligible, self.plan_names(), back=self.back_data(data, origin),
                                selected=origin, reason=reason, buy=buy, note=note)

    @staticmethod
    def wanted(pools: list[PoolView], origin: int | None, held: set) -> dict:
        """What "Buy one" pre-selects: the pool the admin started from, else the first plan
        the account has in a family the user does not hold (nothing pre-selected otherwise)."""
        choice = next((p for p in pools if p.id == origin and p.family not in held), None) or next(
            (p for p in pools if p.family not in held), None)
        return {"plan": choice.plan_code, "interval": choice.interval} if choice else {}

    # ------------------------------------------------------------------ step 3: save

    def save(self, turn: Turn, data: dict) -> dict:
        t = T(turn.reader)
        user_id = AssignChoice.parse(data).user
        if data.get("to_pool") in (None, ""):
            card = self.plans_step(turn, self.lic.accounts.directory_user(turn.actor, user_id), data,
                                   note=t("assign.plans.missing"))
            self.lic.audit.record_refusal(turn.actor, AuditAction.card(Verb.ASSIGN_SAVE),
                                          InvalidInput(Message("No license was chosen.")), f"user:{user_id}")
            return card
        pool_id = data_int(data, "to_pool", "pool")
        try:
            pool = self.lic.seats.assign(turn.actor, user_id, pool_id)
        except SeatAlreadyHeld as e:  # e.g. a double click: the first one assigned it
            again = execute(t("assign.btn.again"), Verb.ASSIGN_START, PoolRef(pool_id), inputs="none")
            return common.error_card(turn.reader, e.message, heading=t("assign.held.title"), retry=again,
                                     show_pools=True)
        except NoFreeSeat as e:  # the seat was taken meanwhile: the plans as they are now, and Buy one
            buy = {"plan": e.details.get("plan"), "interval": e.details.get("interval")}
            return self.plans_step(turn, self.lic.accounts.directory_user(turn.actor, user_id), data, note=e.message,
                                   buy=buy)
        return cards.assigned_card(turn.reader, self.lic.accounts.directory_user(turn.actor, user_id), pool)

    # ------------------------------------------------------------------ notification

    def assigned_notice(self, item, locale: Reader | str | None) -> dict:
        p = item.payload
        return cards.assigned_notice(locale, self.lic.plan_views.plan_name(p.get("plan")), p.get("interval"),
                                     p.get("by"))
