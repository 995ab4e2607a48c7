"""Accounts: who is calling (resolved once per unit), whom to ask, the account's users."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import bindparam, false, func, select, tuple_
from sqlalchemy.orm import Session

from core.errors import DomainNotApproved, InvalidInput, Message, NotFound, UnknownCaller
from core.kinds import AuditAction
from core.models import Account, AccountDomain, AccountTenant, Pool, Seat, User, UserTerm
from core.services.shared import MAX_PAGE_SIZE, PAGE_SIZE, execute_core, page_args, term_filter
from core.text import clean_text, parse_id, search_terms, sort_key
from core.views import Actor, CallerView, Page, UserRow

if TYPE_CHECKING:
    from core.unit_of_work import Unit, Units

_CALLER = (select(User.id, User.name, User.email, User.role, Account.id, Account.name, Account.currency)
           .select_from(User).join(Account, Account.id == User.account_id)
           .join(AccountTenant, AccountTenant.account_id == Account.id)
           .where(AccountTenant.tenant_id == bindparam("tenant"), User.aad_object_id == bindparam("aad")))


def resolve_caller(s: Session, actor: Actor) -> CallerView:
    """The account and user behind ``actor`` (UnknownCaller, saying whom to ask, if none)."""
    if not isinstance(actor, Actor) or not actor.tenant_id or not actor.aad_object_id:
        raise UnknownCaller(Message("I could not tell who you are. Please open License Desk from Microsoft Teams."),
                            reason="anonymous")
    row = execute_core(s, _CALLER, {"tenant": actor.tenant_id.lower(), "aad": actor.aad_object_id}).first()
    if row is None:
        known = s.scalar(select(AccountTenant.account_id).where(AccountTenant.tenant_id == actor.tenant_id.lower()))
        if known is None:
            raise UnknownCaller(Message(
                "Your organisation has no License Desk account yet. Ask your IT administrator to set one up."
            ))
        whom, admins = whom_to_ask(s, known)
        if whom:
            message = Message("You are not a user of your organisation's License Desk account yet. "
                              "Ask {whom} to add you.", whom=whom)
        else:
            message = Message("You are not a user of your organisation's License Desk account yet. "
                              "Ask one of its administrators to add you.")
        raise UnknownCaller(message, account_id=known, **admins)
    user_id, name, email, role, account_id, account_name, currency = row  # (columns: no ORM objects to build)
    return CallerView(account_id=account_id, account_name=account_name, currency=currency, user_id=user_id,
                      name=name, email=email, role=role, tenant_id=actor.tenant_id.lower())


def _from_row(s: Session, conds, offset: int, total: int) -> list:
    """The condition "from the row at ``offset`` on" (by name): that row's key found over the
    index (account, sort key, id) alone, counted from the nearer end, so that a page far down a
    large directory costs no OFFSET over whole rows."""
    if offset <= 0:
        return []
    keys = select(User.sort_key, User.id).where(*conds).limit(1)
    if offset <= total // 2:
        first = s.execute(keys.order_by(User.sort_key, User.id).offset(offset)).first()
    else:
        first = s.execute(keys.order_by(User.sort_key.desc(), User.id.desc()).offset(total - 1 - offset)).first()
    return [tuple_(User.sort_key, User.id) >= tuple_(*first)] if first else [false()]


def whom_to_ask(s: Session, account_id: int) -> tuple[str | None, dict]:
    """Up to three administrators of the account, by name ("A, B or C", a Message), for a
    refusal to say whom to ask (refusal paths only: one query), and the error details naming
    them (``admins``, and ``more_admins`` when there are others). (None, {...}) when it has none."""
    names = [n[:80] for n in s.scalars(select(User.name).where(User.account_id == account_id,
                                                               User.role == "admin")
                                       .order_by(User.sort_key, User.id).limit(4))]
    shown = names[:3]
    details = {"admins": shown, "more_admins": len(names) > 3}
    if not shown:
        return None, details
    if len(names) > 3:
        return Message("{a}, {b}, {c} or another administrator", a=shown[0], b=shown[1], c=shown[2]), details
    if len(shown) == 3:
        return Message("{a}, {b} or {c}", a=shown[0], b=shown[1], c=shown[2]), details
    if len(shown) == 2:
        return Message("{a} or {b}", a=shown[0], b=shown[1]), details
    return shown[0], details


def load_user(u: Unit, caller: CallerView, user_id) -> User:
    uid = parse_id(user_id, "user")
    user = u.s.scalars(select(User).where(User.id == uid, User.account_id == caller.account_id)).first()
    if user is None:
        raise NotFound(Message("That user is not in your account."))
    return user


def check_domain(u: Unit, account_id: int, email: str) -> None:
    domain = email.rsplit("@", 1)[-1].lower() if "@" in email else ""
    ok = u.s.scalar(select(AccountDomain.domain).where(AccountDomain.account_id == account_id,
                                                       AccountDomain.domain == domain))
    if not ok:
        raise DomainNotApproved(Message("{email} is not on an approved e-mail domain of your account, so it "
                                        "cannot hold a license. An administrator can approve the domain first.",
                                        email=email))


def _held_codes(s: Session, user_ids: list[int]) -> dict[int, str]:
    held: dict[int, list[str]] = {}
    for uid, code in s.execute(select(Seat.user_id, Pool.plan_code).join(Pool, Pool.id == Seat.pool_id)
                               .where(Seat.user_id.in_(user_ids))):
        held.setdefault(uid, []).append(code)
    return {uid: ",".join(sorted(codes)) for uid, codes in held.items()}


class Accounts:
    def __init__(self, units: Units):
        self.units = units

    def whoami(self, actor: Actor) -> CallerView:
        return self.units.query(actor, AuditAction.WHOAMI, lambda u, c: c, admin=False)

    def require_admin(self, actor: Actor, action: str = "admin") -> CallerView:
        return self.units.query(actor, action, lambda u, c: c, admin=True)

    def directory(self, actor: Actor, *, query: str | None = None, page=0, page_size=PAGE_SIZE) -> Page:
        """The account's users, searchable; each with the plans they hold."""

        def fn(u: Unit, caller: CallerView):
            s = u.s
            q = clean_text(query, max_length=100, field="search text") or ""
            pg, size = page_args(page, page_size)
            conds = [User.account_id == caller.account_id, *term_filter(caller.account_id, q, User.id)]
            total = s.scalar(select(func.count()).select_from(User).where(*conds)) or 0
            users = s.execute(select(User.id, User.name, User.email)
                              .where(*conds, *_from_row(s, conds, pg * size, total))
                              .order_by(User.sort_key, User.id).limit(size)).all() if pg * size < total else []
            held: dict[int, list[str]] = {}
            if users:
                for uid, code in s.execute(select(Seat.user_id, Pool.plan_code).join(Pool, Pool.id == Seat.pool_id)
                                           .where(Seat.user_id.in_([u[0] for u in users]))):
                    held.setdefault(uid, []).append(code)
            items = [UserRow(id=u[0], name=u[1], email=u[2], plan_code=",".join(sorted(held.get(u[0], []))) or None)
                     for u in users]
            return Page(items=items, total=total, page=pg, page_size=size, query=q)

        return self.units.query(actor, AuditAction.DIRECTORY_SEARCH, fn)

    def directory_user(self, actor: Actor, user_id) -> UserRow:
        """One user of the caller's account with the plans they hold (``plan_code``: a comma
        list, as in :meth:`directory`); NotFound for anyone else."""

        def fn(u: Unit, caller: CallerView):
            user = load_user(u, caller, user_id)
            return UserRow(user.id, user.name, user.email, plan_code=_held_codes(u.s, [user.id]).get(user.id))

        return self.units.query(actor, AuditAction.DIRECTORY_USER, fn, target=f"user:{user_id}")

    def users_by_aad(self, actor: Actor, aad_object_ids) -> dict[str, UserRow]:
        """Which of these Azure AD object ids (e.g. people found in the tenant's directory) are
        users of the caller's account already, with the plans they hold."""

        def fn(u: Unit, caller: CallerView):
            ids = [a for a in aad_object_ids if isinstance(a, str) and 0 < len(a) <= 64][:MAX_PAGE_SIZE]
            if not ids:
                return {}
            rows = u.s.execute(select(User.aad_object_id, User.id, User.name, User.email)
                               .where(User.account_id == caller.account_id, User.aad_object_id.in_(ids))).all()
            held = _held_codes(u.s, [r[1] for r in rows]) if rows else {}
            return {r[0]: UserRow(r[1], r[2], r[3], plan_code=held.get(r[1])) for r in rows}

        return self.units.query(actor, AuditAction.DIRECTORY_LOOKUP, fn)

    def directory_rows(self, actor: Actor, user_ids: list[int]) -> list[UserRow]:
        """Names and e-mails of the given users of the caller's account (unknown ids dropped)."""

        def fn(u: Unit, caller: CallerView):
            ids = list(user_ids)[:MAX_PAGE_SIZE]
            rows = u.s.execute(select(User.id, User.name, User.email)
                               .where(User.account_id == caller.account_id, User.id.in_(ids))).all()
            by_id = {r[0]: UserRow(r[0], r[1], r[2]) for r in rows}
            return [by_id[i] for i in ids if i in by_id]

        return self.units.query(actor, AuditAction.DIRECTORY_ROWS, fn, admin=False)

    def add_user(self, actor: Actor, aad_object_id: str, email: str, name: str) -> UserRow:
        """Add a person (e.g. picked from the tenant's directory) to the account, only if their
        e-mail domain is approved. Adding someone already there returns them unchanged."""

        def fn(u: Unit, caller: CallerView):
            aad = clean_text(aad_object_id, max_length=64, field="directory id", required=True)
            mail = (clean_text(email, max_length=320, field="e-mail", required=True) or "").lower()
            display = clean_text(name, max_length=200, field="name", required=True)
            if mail.count("@") != 1:
                raise InvalidInput(Message("That e-mail address is not valid."))
            existing = u.s.scalars(select(User).where(User.account_id == caller.account_id,
                                                      User.aad_object_id == aad)).first()
            if existing:
                return UserRow(existing.id, existing.name, existing.email)
            check_domain(u, caller.account_id, mail)
            user = self.insert_user(u.s, caller.account_id, aad, mail, display, "member")
            u.audit_ok(caller, AuditAction.USER_ADDED, f"user:{user.id}", {"email": mail})
            return UserRow(user.id, user.name, user.email)

        return self.units.command(actor, AuditAction.USER_ADD, fn, target=f"aad:{aad_object_id}")

    def insert_user(self, s: Session, account_id: int, aad: str, email: str, name: str, role: str) -> User:
        """A new user of the account with their search terms, in the session's transaction (no
        checks: :meth:`add_user` makes them; the demo data and test fixtures call this directly)."""
        user = User(account_id=account_id, aad_object_id=aad, email=email.lower(), name=name,
                    sort_key=sort_key(name), role=role, unreachable=False, created_at=self.units.now())
        s.add(user)
        s.flush()
        s.add_all(UserTerm(user_id=user.id, term=t, account_id=account_id) for t in search_terms(name, email))
        return user

    def user_actor(self, account_id, user_id) -> Actor | None:
        """The Teams identity (a tenant of the account, the Azure AD object id) of a user of the
        account, for a request that names the user by id, e.g. a signed download link; None when
        the account has no such user."""
        try:
            aid, uid = parse_id(account_id, "account"), parse_id(user_id, "user")
        except InvalidInput:
            return None
        with self.units.system_read() as u:
            row = u.s.execute(select(AccountTenant.tenant_id, User.aad_object_id)
                              .join(User, User.account_id == AccountTenant.account_id)
                              .where(User.id == uid, User.account_id == aid)
                              .order_by(AccountTenant.tenant_id).limit(1)).first()
        return Actor(row[0], row[1]) if row else None

    def account_admin_names(self, actor: Actor, limit: int = 5) -> list[str]:
        """Whom to ask: the administrators of the account bound to the actor's tenant (also for
        someone of that tenant who is not a user of the account yet)."""
        tenant = actor.tenant_id.lower() if isinstance(actor, Actor) and actor.tenant_id else ""
        if not tenant:
            return []
        with self.units.system_read() as u:
            return list(u.s.scalars(select(User.name)
                                    .join(AccountTenant, AccountTenant.account_id == User.account_id)
                                    .where(AccountTenant.tenant_id == tenant, User.role == "admin")
                                    .order_by(User.sort_key, User.id).limit(max(1, min(limit, 20)))))
