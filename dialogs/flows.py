"""The journeys the bot offers, built with what each needs (by constructor): the one place that
says which flows share which steps. bootstrap.py gives the result to the router."""

from __future__ import annotations

from core.licensing import Licensing
from dialogs.assign import AssignFlow
from dialogs.audit import AuditFlow, ExportLinks
from dialogs.base import Flow
from dialogs.buy import BuyFlow
from dialogs.mylicense import MyLicenseFlow
from dialogs.pool_admin import PoolAdminFlow
from dialogs.pool_steps import PoolSteps
from dialogs.quotes import QuoteFlow
from dialogs.requests import RequestsFlow
from dialogs.upgrade import UpgradeFlow


def default_flows(lic: Licensing, *, directory=None, links: ExportLinks | None = None) -> list[Flow]:
    """Every journey, in the order the help card lists their commands. ``directory``: the
    tenant's directory for the assign picker (None: the account's users only); ``links``: the
    audit download links (None: no Export button)."""
    pool_steps = PoolSteps(lic)
    quotes = QuoteFlow(lic)
    return [UpgradeFlow(lic, pool_steps, quotes), quotes, BuyFlow(lic, quotes), AssignFlow(lic, directory),
            PoolAdminFlow(lic, pool_steps), RequestsFlow(lic, quotes), MyLicenseFlow(lic), AuditFlow(lic, links)]
