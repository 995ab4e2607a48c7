"""The catalog's plans as views for the chat layer."""

from __future__ import annotations

from typing import overload

from core.catalog import Catalog, Plan
from core.views import PlanView


class PlanViews:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def plan_view(self, plan: Plan) -> PlanView:
        return PlanView(code=plan.code, name=plan.name, family=plan.family,
                        family_name=self.catalog.families[plan.family], rank=plan.rank, currency=plan.currency,
                        month=plan.prices["month"], year=plan.prices["year"])

    def plans(self) -> list[PlanView]:
        return [self.plan_view(p) for p in self.catalog.all_plans()]

    @overload
    def name_or_none(self, code: str) -> str: ...
    @overload
    def name_or_none(self, code: str | None) -> str | None: ...
    def name_or_none(self, code: str | None) -> str | None:
        """A plan's name (an unknown code as it is; None for None)."""
        if code is None:
            return None
        plan = self.catalog.plans.get(code)
        return plan.name if plan else code

    def plan_name(self, code: str | None) -> str:
        return self.name_or_none(code) or ""
