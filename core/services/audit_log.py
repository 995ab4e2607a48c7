"""The audit log: its pages, its CSV export, and the refusals the chat layer makes itself."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from core.errors import DomainError, Message, NotFound
from core.kinds import AuditAction
from core.models import Account, AuditEvent
from core.services.accounts import Accounts
from core.services.shared import PAGE_SIZE, page_args
from core.views import Actor, AuditRow, CallerView, Page

if TYPE_CHECKING:
    from core.unit_of_work import Unit, Units


def csv_safe(value: str | None) -> str:
    """Neutralise spreadsheet formulas in exported text (OWASP "CSV injection": a cell beginning with
    = + - @, a tab or a line break; spreadsheets also skip leading blanks, so " =1+1" counts too):
    such a cell gets a leading apostrophe and is read as text."""
    value = value or ""
    risky = value[:1] in ("\t", "\r", "\n") or value.lstrip()[:1] in ("=", "+", "-", "@")
    return "'" + value if risky else value


def stored_message(r: AuditEvent) -> str | None:
    """An audit row's sentence: the Message rebuilt from the template and params stored with it
    (so that it can be said in its reader's language), else the stored English text (older rows)."""
    stored = r.detail.get("message") if isinstance(r.detail, dict) else None
    return (Message.from_json(stored) if stored else None) or r.message


def audit_row(r: AuditEvent) -> AuditRow:
    return AuditRow(id=r.id, created_at=r.created_at, actor=r.actor, tenant_id=r.tenant_id, action=r.action,
                    outcome=r.outcome, target=r.target, message=stored_message(r))


class AuditLog:
    def __init__(self, units: Units, accounts: Accounts):
        self.units = units
        self.accounts = accounts

    def page(self, actor: Actor, *, page=0, page_size=PAGE_SIZE) -> Page:
        def fn(u: Unit, caller: CallerView):
            s = u.s
            pg, size = page_args(page, page_size)
            cond = AuditEvent.account_id == caller.account_id
            total = s.scalar(select(func.count()).select_from(AuditEvent).where(cond)) or 0
            rows = s.scalars(select(AuditEvent).where(cond).order_by(AuditEvent.id.desc())
                             .limit(size).offset(pg * size)).all()
            return Page([audit_row(r) for r in rows], total, pg, size)

        return self.units.query(actor, AuditAction.AUDIT_LIST, fn)

    def export_csv(self, account_id: int, out: io.TextIOBase | None = None, *,
                         headers: list[str] | None = None, say=str) -> str:
        """The account's audit log as CSV, oldest first (streamed in batches). ``headers``: the
        column names in the reader's language; ``say``: says a refusal's Message in it."""
        text = io.StringIO()
        buf = out or text
        w = csv.writer(buf)
        w.writerow(headers or ["id", "created_at", "tenant_id", "actor", "action", "outcome", "target", "message"])
        with self.units.system_read() as u:
            s = u.s
            if s.get(Account, account_id) is None:
                raise NotFound(Message("There is no account {account}.", account=account_id))
            last = 0
            while True:
                rows = s.scalars(select(AuditEvent).where(AuditEvent.account_id == account_id, AuditEvent.id > last)
                                 .order_by(AuditEvent.id).limit(1000)).all()
                if not rows:
                    break
                for r in rows:
                    w.writerow([r.id, r.created_at.isoformat(), r.tenant_id or "", csv_safe(r.actor),
                                r.action, r.outcome, csv_safe(r.target), csv_safe(say(stored_message(r) or ""))])
                last = rows[-1].id
        return text.getvalue() if out is None else ""

    def export(self, actor: Actor) -> str:
        caller = self.accounts.require_admin(actor, AuditAction.AUDIT_EXPORT)
        return self.export_csv(caller.account_id)

    def authorize_export(self, actor: Actor) -> CallerView:
        """An administrator downloading the audit log: re-checked now (NotAdmin, audited, if they
        no longer are one) and the download audited."""

        def fn(u: Unit, caller: CallerView) -> CallerView:
            u.audit_ok(caller, AuditAction.AUDIT_EXPORTED, f"account:{caller.account_id}")
            return caller

        return self.units.command(actor, AuditAction.AUDIT_EXPORT, fn)

    def record_refusal(self, actor: Actor | None, action: str, error: DomainError, target: str | None = None) -> None:
        """For the chat layer: audit an attempt it refused itself (malformed card data, ...); inside
        a unit, once it has ended."""
        self.units.refuse(actor, action, error, target)
