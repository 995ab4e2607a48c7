"""The audit flow: the account's last events, 20 a page, and a short-lived signed link to
download the whole log as CSV (served by ``web.audit_export``). Administrators only."""

from __future__ import annotations

import re
from typing import Protocol

from cards import audit
from cards.data import PageRef
from cards.verbs import Verb
from core.kinds import AuditAction
from core.licensing import Licensing
from core.views import CallerView, Page
from dialogs.base import CommandSpec, Flow, Turn

_REF = re.compile(r"(user|pool):([0-9]{1,18})")


class ExportLinks(Protocol):
    def url(self, account_id: int, user_id: int) -> str: ...


class AuditFlow(Flow):
    def __init__(self, lic: Licensing, links: ExportLinks | None = None) -> None:
        super().__init__(lic)
        # the signed download links (bootstrap.py builds them with the route); None: no Export button
        self.links = links
        self.commands = {
            "audit": CommandSpec(self.cmd_audit, True),
        }
        self.actions = {Verb.AUDIT: self.show}

    def cmd_audit(self, turn: Turn) -> dict:
        return self.show(turn, {})

    def show(self, turn: Turn, data: dict) -> dict:
        with self.lic.units.reading(turn.actor):  # (one snapshot for the card)
            caller: CallerView = self.lic.accounts.require_admin(turn.actor, AuditAction.AUDIT_LIST)
            page = PageRef.parse(data).page
            pg: Page = self.lic.audit.page(turn.actor, page=page)
            if page and not pg.items and pg.total:  # the log is shorter than the card thought
                pg = self.lic.audit.page(turn.actor, page=pg.pages - 1)
            refs = {(m[1], int(m[2])) for r in pg.items if (m := _REF.fullmatch(r.target or ""))}
            user_ids = sorted(i for kind, i in refs if kind == "user")
            users = ({u.id: u.name for u in self.lic.accounts.directory_rows(turn.actor, user_ids)}
                     if user_ids else {})
            pools = ({p.id: p for p in self.lic.pools.list_pools(turn.actor)}
                     if any(kind == "pool" for kind, _ in refs) else {})
        url = self.links.url(caller.account_id, caller.user_id) if self.links else None
        return audit.audit_card(turn.reader, caller.account_name, pg, export_url=url, users=users, pools=pools)
