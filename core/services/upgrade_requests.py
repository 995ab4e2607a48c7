"""Upgrade requests: a member asks for a higher plan; the first administrator's decision wins
(an approval prices the upgrade quote at once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from core.errors import CurrencyMismatch, InvalidInput, Message, NotAdmin, NotAnUpgrade, NotFound, RequestClosed
from core.kinds import AuditAction, OutboxKind, QuoteStatus, RequestStatus
from core.models import Pool, PostedCard, Quote, Seat, UpgradeRequest, User
from core.services.plans import PlanViews
from core.services.shared import MAX_PAGE_SIZE, PAGE_SIZE, page_args
from core.text import clean_text, parse_id
from core.views import Actor, CallerView, Page, QuoteView, RequestView

if TYPE_CHECKING:
    from core.services.quotes import Quotes
    from core.unit_of_work import Unit, Units


class UpgradeRequests:
    def __init__(self, units: Units, plans: PlanViews, quotes: Quotes):
        self.units = units
        self.plans = plans
        self.quotes = quotes

    def view(self, u: Unit, req: UpgradeRequest) -> RequestView:
        s, plan_name = u.s, self.plans.name_or_none
        requester = s.get_one(User, req.requester_id)
        decider = s.get(User, req.decided_by) if req.decided_by else None
        return RequestView(id=req.id, status=req.status, requester_id=req.requester_id,
                           requester_name=requester.name, requester_email=requester.email, family=req.family,
                           from_plan=req.from_plan, from_plan_name=plan_name(req.from_plan),
                           to_plan=req.to_plan, to_plan_name=plan_name(req.to_plan), reason=req.reason,
                           created_at=req.created_at, decided_by_name=decider.name if decider else None,
                           decided_at=req.decided_at, decline_reason=req.decline_reason, quote_id=req.quote_id,
                           account_id=req.account_id)

    def request_upgrade(self, actor: Actor, to_plan, reason=None) -> RequestView:
        def fn(u: Unit, caller: CallerView):
            s, catalog = u.s, u.catalog
            if not isinstance(to_plan, str) or not to_plan:
                raise InvalidInput(Message("Choose the plan you would like."))
            plan = catalog.plan(to_plan)
            text = clean_text(reason, max_length=500, field="reason")
            current = s.execute(select(Pool.plan_code).select_from(Seat).join(Pool, Pool.id == Seat.pool_id)
                                .where(Seat.user_id == caller.user_id, Seat.family == plan.family)).first()
            if current is None:
                raise InvalidInput(Message("You hold no {family} license yet. Ask an administrator to assign one to "
                                           "you.", family=catalog.families[plan.family]))
            from_plan = catalog.plan(current[0])
            if plan.rank <= from_plan.rank:
                raise NotAnUpgrade(Message("{plan} is not above your current plan, {current}.", plan=plan.name,
                                           current=from_plan.name))
            if plan.currency != caller.currency:
                raise CurrencyMismatch(Message("{plan} is sold in {sold_in}, but your account is billed in "
                                               "{billed_in}.", plan=plan.name, sold_in=plan.currency,
                                               billed_in=caller.currency))
            pending = s.scalars(select(UpgradeRequest).where(
                UpgradeRequest.requester_id == caller.user_id, UpgradeRequest.family == plan.family,
                UpgradeRequest.status == RequestStatus.PENDING)).first()
            if pending:
                raise RequestClosed(Message("You already asked for {plan} on {date:%Y-%m-%d}; an administrator will "
                                            "answer soon.", plan=self.plans.name_or_none(pending.to_plan),
                                            date=pending.created_at))
            approved = s.execute(
                select(UpgradeRequest.to_plan).join(Quote, Quote.id == UpgradeRequest.quote_id)
                .where(UpgradeRequest.requester_id == caller.user_id, UpgradeRequest.family == plan.family,
                       UpgradeRequest.status == RequestStatus.APPROVED, Quote.status == QuoteStatus.OPEN,
                       Quote.expires_at > u.now)
            ).first()
            if approved:
                raise RequestClosed(Message("Your request for {plan} was approved; an administrator is completing "
                                            "the payment. You will be told when it is active.",
                                            plan=self.plans.name_or_none(approved[0])))
            req = UpgradeRequest(account_id=caller.account_id, requester_id=caller.user_id, family=plan.family,
                                 from_plan=from_plan.code, to_plan=plan.code, reason=text, status=RequestStatus.PENDING,
                                 created_at=u.now)
            s.add(req)
            try:
                s.flush()
            except IntegrityError:  # the same request sent twice at once (PostgreSQL): the index decides
                raise RequestClosed(Message("You already asked for an upgrade of your {family} license; an "
                                            "administrator will answer soon.",
                                            family=catalog.families[plan.family])) from None
            for admin_id in s.scalars(select(User.id).where(User.account_id == caller.account_id,
                                                            User.role == "admin")):
                u.outbox(account_id=caller.account_id, kind=OutboxKind.REQUEST_CREATED,
                         user_id=admin_id, dedupe_key=f"request:{req.id}:admin:{admin_id}",
                         payload={"request_id": req.id})
            u.audit_ok(caller, AuditAction.REQUEST_CREATED, f"request:{req.id}",
                       {"from": from_plan.code, "to": plan.code})
            return self.view(u, req)

        return self.units.command(actor, AuditAction.REQUEST_CREATE, fn, admin=False)

    @staticmethod
    def _load_request(u: Unit, caller: CallerView, request_id, *, lock: bool = False) -> UpgradeRequest:
        rid = parse_id(request_id, "request")
        q = select(UpgradeRequest).where(UpgradeRequest.id == rid, UpgradeRequest.account_id == caller.account_id)
        req = u.s.scalars(q.with_for_update() if lock else q).first()
        if req is None:
            raise NotFound(Message("That upgrade request does not exist in your account."))
        return req

    def _decide(self, u: Unit, caller: CallerView, request_id, status: str) -> UpgradeRequest:
        s = u.s
        req = self._load_request(u, caller, request_id, lock=True)
        won = s.execute(update(UpgradeRequest)
                        .where(UpgradeRequest.id == req.id, UpgradeRequest.status == RequestStatus.PENDING)
                        .values(status=status, decided_by=caller.user_id, decided_at=u.now)
                        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]  # (a CursorResult)
        if won != 1:
            s.refresh(req)
            view = self.view(u, req)
            raise RequestClosed.decided(view.status, view.decided_by_name, view.decided_at, request_id=req.id)
        s.refresh(req)
        for card in s.scalars(select(PostedCard).where(PostedCard.subject == "request",
                                                       PostedCard.subject_id == str(req.id))):
            u.outbox(account_id=req.account_id, kind=OutboxKind.REQUEST_CARD,
                     dedupe_key=f"card:{card.id}:{req.id}:{status}",  # (a dropped card's id may be reused)
                     payload={"posted_card": card.id, "request_id": req.id})
        return req

    def approve_request(self, actor: Actor, request_id) -> QuoteView:
        """First decision wins; the approving admin gets the requester's upgrade quote."""

        def fn(u: Unit, caller: CallerView):
            req = self._decide(u, caller, request_id, RequestStatus.APPROVED)
            seat_pool = u.s.scalar(select(Seat.pool_id).where(Seat.user_id == req.requester_id,
                                                              Seat.family == req.family))
            if seat_pool is None:
                raise InvalidInput(Message("The requester no longer holds a license of that family; nothing was "
                                           "approved."))
            quote = self.quotes.upgrade_in(u, caller, seat_pool, [req.requester_id], req.to_plan, req.id)
            req.quote_id = quote.id
            u.outbox(account_id=req.account_id, kind=OutboxKind.REQUEST_APPROVED,
                     user_id=req.requester_id, dedupe_key=f"request:{req.id}:approved",
                     payload={"request_id": req.id, "by": caller.name})
            u.audit_ok(caller, AuditAction.REQUEST_APPROVED, f"request:{req.id}", {"quote": quote.id})
            return quote

        return self.units.command(actor, AuditAction.REQUEST_APPROVE, fn, target=f"request:{request_id}")

    def decline_request(self, actor: Actor, request_id, reason=None) -> RequestView:
        def fn(u: Unit, caller: CallerView):
            text = clean_text(reason, max_length=500, field="reason")
            req = self._decide(u, caller, request_id, RequestStatus.DECLINED)
            req.decline_reason = text
            u.outbox(account_id=req.account_id, kind=OutboxKind.REQUEST_DECLINED,
                     user_id=req.requester_id, dedupe_key=f"request:{req.id}:declined",
                     payload={"request_id": req.id, "by": caller.name, "reason": text})
            u.audit_ok(caller, AuditAction.REQUEST_DECLINED, f"request:{req.id}")
            u.s.flush()
            return self.view(u, req)

        return self.units.command(actor, AuditAction.REQUEST_DECLINE, fn, target=f"request:{request_id}")

    def request(self, actor: Actor, request_id) -> RequestView:
        def fn(u: Unit, caller: CallerView):
            req = self._load_request(u, caller, request_id)
            if not caller.is_admin and req.requester_id != caller.user_id:
                raise NotAdmin(Message("Only administrators can see other people's requests."))
            return self.view(u, req)

        return self.units.query(actor, AuditAction.REQUEST_VIEW, fn, admin=False, target=f"request:{request_id}")

    def pending_requests(self, actor: Actor, *, page=0, page_size=PAGE_SIZE) -> Page:
        def fn(u: Unit, caller: CallerView):
            s = u.s
            pg, size = page_args(page, page_size)
            cond = [UpgradeRequest.account_id == caller.account_id, UpgradeRequest.status == RequestStatus.PENDING]
            total = s.scalar(select(func.count()).select_from(UpgradeRequest).where(*cond)) or 0
            reqs = s.scalars(select(UpgradeRequest).where(*cond).order_by(UpgradeRequest.id)
                             .limit(size).offset(pg * size)).all()
            return Page([self.view(u, r) for r in reqs], total, pg, size)

        return self.units.query(actor, AuditAction.REQUESTS_LIST, fn)

    def my_requests(self, actor: Actor) -> list[RequestView]:
        """The caller's own open requests: pending, or approved with the quote still to be paid."""

        def fn(u: Unit, caller: CallerView):
            reqs = u.s.scalars(
                select(UpgradeRequest).outerjoin(Quote, Quote.id == UpgradeRequest.quote_id)
                .where(UpgradeRequest.requester_id == caller.user_id,
                       or_(UpgradeRequest.status == RequestStatus.PENDING,
                           and_(UpgradeRequest.status == RequestStatus.APPROVED, Quote.status == QuoteStatus.OPEN,
                                Quote.expires_at > u.now)))
                .order_by(UpgradeRequest.id).limit(MAX_PAGE_SIZE)).all()
            return [self.view(u, r) for r in reqs]

        return self.units.query(actor, AuditAction.REQUESTS_MINE, fn, admin=False)

    def request_snapshot(self, request_id) -> RequestView | None:
        """An upgrade request as it is now, for the system (notifications, card updates)."""
        try:
            rid = parse_id(request_id, "request")
        except InvalidInput:
            return None
        with self.units.system_read() as u:
            req = u.s.get(UpgradeRequest, rid)
            return self.view(u, req) if req else None
