"""The plan catalog, loaded from data (``catalog.json``) and validated on load."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from core.errors import CurrencyMismatch, InvalidInput, Message, NotFound

INTERVALS = ("month", "year")

_SCHEMA = {
    "type": "object",
    "required": ["families", "plans"],
    "additionalProperties": False,
    "properties": {
        "families": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}},
                "additionalProperties": False,
            },
        },
        "plans": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["code", "name", "family", "rank", "currency", "prices"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"},
                    "name": {"type": "string", "minLength": 1},
                    "family": {"type": "string"},
                    "rank": {"type": "integer", "minimum": 1},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "prices": {
                        "type": "object",
                        "required": list(INTERVALS),
                        "additionalProperties": False,
                        "properties": {i: {"type": "integer", "minimum": 1} for i in INTERVALS},
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    family: str
    rank: int
    currency: str
    prices: dict[str, int]

    def price(self, interval: str) -> int:
        if interval not in self.prices:
            raise InvalidInput(Message("“{interval}” is not a billing interval (month or year).", interval=interval))
        return self.prices[interval]


class Catalog:
    def __init__(self, data: dict):
        jsonschema.validate(data, _SCHEMA)
        self.families: dict[str, str] = {k: v["name"] for k, v in data["families"].items()}
        self.plans: dict[str, Plan] = {}
        for p in data["plans"]:
            if p["family"] not in self.families:
                raise ValueError(f"plan {p['code']}: unknown family {p['family']}")
            if p["code"] in self.plans:
                raise ValueError(f"plan {p['code']} is defined twice")
            self.plans[p["code"]] = Plan(**p)
        for fam in self.families:
            ranks = [p.rank for p in self.plans.values() if p.family == fam]
            if len(ranks) != len(set(ranks)):
                raise ValueError(f"family {fam}: two plans share a rank")

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        path = path or Path(__file__).with_name("catalog.json")
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def plan(self, code: str) -> Plan:
        try:
            return self.plans[code]
        except (KeyError, TypeError):
            raise NotFound(Message("There is no plan “{code}”.", code=code)) from None

    def priced_plan(self, code: str, interval: str, currency: str) -> Plan:
        """The plan, checked to be sold in ``interval`` and in the account's ``currency``."""
        plan = self.plan(code)
        plan.price(interval)
        if plan.currency != currency:
            raise CurrencyMismatch(Message("{plan} is sold in {sold_in}, but this account is billed in {billed_in}.",
                                           plan=plan.name, sold_in=plan.currency, billed_in=currency))
        return plan

    def family_plans(self, family: str) -> list[Plan]:
        return sorted((p for p in self.plans.values() if p.family == family), key=lambda p: p.rank)

    def higher_plans(self, plan: Plan) -> list[Plan]:
        return [p for p in self.family_plans(plan.family) if p.rank > plan.rank]

    def lower_plans(self, plan: Plan) -> list[Plan]:
        return [p for p in self.family_plans(plan.family) if p.rank < plan.rank]

    def all_plans(self) -> list[Plan]:
        order = list(self.families)
        return sorted(self.plans.values(), key=lambda p: (order.index(p.family), p.rank))
