"""Benchmark data, bulk-inserted with SQLAlchemy Core: the rows ``core.demo.load_demo`` and
``Licensing._insert_user`` write (accounts, account_tenants, account_domains, subscriptions,
pools, users, user_terms, seats with their sort_key), a few statements per table.

One account holds at most 10 pools (one per plan and interval: 5 plans x 2 intervals; the
schema's ``uq_pools_subscription_plan``), so the 50 pools of the benchmark are the measured
tenant's 10 (10,000 users) plus 4 neighbour tenants of 10 pools each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache

from dateutil.relativedelta import relativedelta
from sqlalchemy import insert, select

from core.licensing import Licensing
from core.models import Account, AccountDomain, AccountTenant, Discount, Pool, Seat, Subscription, User, UserTerm
from core.periods import period_containing
from core.text import fold, sort_key, words

FIRST = ["Ana", "Bjørn", "Chloé", "Dmitri", "Élodie", "Farid", "Gaël", "Hana", "Ivo", "Józef", "Kai", "Léa", "Mateo",
         "Nadia", "Oskar", "Paula", "Rémi", "Sofía", "Tomás", "Uma", "Vera", "Wen", "Xavier", "Yara", "Zoltán",
         "Anaïs", "Benoît", "Çelik", "Dörte", "Eero", "Fañch", "Gintarė"]
STEM = ["Bar", "Cor", "Dal", "Fen", "Gar", "Hol", "Kes", "Lor", "Mar", "Nor", "Pel", "Ros", "Sal", "Tor", "Val", "Wes"]
END = ["ton", "ley", "berg", "mann", "ford", "wick", "dale", "son", "eau", "ini", "ez", "ov", "ski", "sen", "er",
       "ård", "ić", "és", "ø", "ão"]

MAIN_TENANT = "00000000-0000-0000-0000-00000000b001"
MAIN_ADMIN = "00000000-0000-0000-0000-00000000a001"
# (interval, plan) -> users holding a seat; the standard family sums to 10,000 (a user holds
# at most one seat per family), the API family to 3,500 of the same users
MAIN_POOLS = {
    ("month", "eco"): 4000, ("month", "advanced"): 2000, ("month", "pro"): 1000,
    ("year", "eco"): 1000, ("year", "advanced"): 1000, ("year", "pro"): 1000,
    ("month", "api_advanced"): 2000, ("month", "api_pro"): 500,
    ("year", "api_advanced"): 500, ("year", "api_pro"): 500,
}
NEIGHBOUR_POOLS = dict.fromkeys(MAIN_POOLS, 6)
MAIN_ADMINS = 50  # the turns are spread over this many administrators, each in their 1:1 chat


def admin_aad(tenant_id: str, i: int, first: str) -> str:
    """The aadObjectId of administrator ``i`` (0 is ``first``)."""
    return first if i == 0 else f"bench-{tenant_id[-4:]}-{i:08d}"


@dataclass
class BenchTenant:
    account_id: int
    tenant_id: str
    admin_aad: str
    users: int
    admins: int
    pools: dict[tuple[str, str], int] = field(default_factory=dict)  # (interval, plan) -> pool id
    members: dict[int, list[int]] = field(default_factory=dict)  # pool id -> user ids, in page order


@cache
def _name_words(name: str) -> tuple[str, ...]:
    return tuple(words(name))


def terms_of(name: str, email: str) -> set[str]:
    """``core.text.search_terms`` for the e-mails of :func:`person` (``first.last.N@domain``),
    with the (much repeated) words of names and domains cached."""
    local, _, domain = email.partition("@")
    base, _, number = local.rpartition(".")
    return {w[:320] for w in (*_name_words(name), *_name_words(base), number, *_name_words(domain))}


@cache
def _sort_key(name: str) -> str:
    return sort_key(name)


def person(i: int) -> tuple[str, str]:
    first = FIRST[i % len(FIRST)]
    last = STEM[(i // len(FIRST)) % len(STEM)] + END[(i // 512) % len(END)]
    return f"{first} {last}", f"{_ascii(first)}.{_ascii(last)}.{i}@contoso.com"


@cache
def _ascii(word: str) -> str:
    return fold(word).replace("ø", "o")


def make_tenant(lic: Licensing, tenant_id: str, admin_aad: str, name: str, pools: dict[tuple[str, str], int],
                *, domain: str = "contoso.com", now: datetime | None = None, admins: int = 1) -> BenchTenant:
    """An account with its tenant, both subscriptions, the given pools, and as many users as
    the largest family needs (the first ``admins`` users are administrators; user 0 has the
    aadObjectId ``admin_aad``, the others :func:`admin_aad`)."""
    now = (now or lic.now()).replace(microsecond=0)
    fam_total: dict[str, int] = {}
    for (_, code), n in pools.items():
        fam = lic.catalog.plan(code).family
        fam_total[fam] = fam_total.get(fam, 0) + n
    n_users = max(fam_total.values())
    tag = tenant_id[-4:]

    def work(s):
        account_id = s.execute(insert(Account).values(name=name, currency="USD", created_at=now)
                               .returning(Account.id)).scalar_one()
        s.execute(insert(AccountTenant).values(tenant_id=tenant_id, account_id=account_id))
        s.execute(insert(AccountDomain).values(account_id=account_id, domain=domain))
        s.execute(insert(Discount).values(account_id=account_id, label="Partner discount", percent_off=Decimal("15"),
                                          starts_at=now - timedelta(days=60), ends_at=None))
        subs = {}
        for interval, back in (("month", relativedelta(days=9)), ("year", relativedelta(months=4, days=3))):
            anchor = now - back - relativedelta(months=14 if interval == "month" else 24)
            number, start, end = period_containing(anchor, interval, now)
            subs[interval] = (s.execute(insert(Subscription).values(
                account_id=account_id, interval=interval, anchor_at=anchor, period_number=number,
                period_start=start, period_end=end, created_at=anchor).returning(Subscription.id)).scalar_one(), anchor)
        pool_ids = {}
        for (interval, code), n in pools.items():
            sub_id, anchor = subs[interval]
            pool_ids[(interval, code)] = s.execute(insert(Pool).values(
                account_id=account_id, subscription_id=sub_id, plan_code=code, quantity=n + 5, removal_scheduled=0,
                created_at=anchor).returning(Pool.id)).scalar_one()

        c = s.connection()
        people = [person(i) for i in range(n_users)]
        rows = [{"account_id": account_id, "aad_object_id": admin_aad if i == 0 else f"bench-{tag}-{i:08d}",
                 "email": email.lower(), "name": nm, "sort_key": _sort_key(nm),
                 "role": "admin" if i < admins else "member", "unreachable": False, "created_at": now}
                for i, (nm, email) in enumerate(people)]
        for chunk in range(0, len(rows), 5000):
            c.execute(insert(User.__table__), rows[chunk:chunk + 5000])
        ids = dict(s.execute(select(User.aad_object_id, User.id).where(User.account_id == account_id)).all())
        user_ids = [ids[r["aad_object_id"]] for r in rows]
        terms = [{"user_id": uid, "term": t, "account_id": account_id}
                 for uid, (nm, email) in zip(user_ids, people, strict=True) for t in terms_of(nm, email)]
        for chunk in range(0, len(terms), 10000):
            c.execute(insert(UserTerm.__table__), terms[chunk:chunk + 10000])

        members: dict[int, list[int]] = {}
        next_user = dict.fromkeys(fam_total, 0)
        seats = []
        for (interval, code), n in pools.items():
            fam = lic.catalog.plan(code).family
            pid = pool_ids[(interval, code)]
            _, anchor = subs[interval]
            chosen = range(next_user[fam], next_user[fam] + n)
            next_user[fam] += n
            for i in chosen:
                seats.append({"account_id": account_id, "pool_id": pid, "user_id": user_ids[i], "family": fam,
                              "sort_key": rows[i]["sort_key"], "assigned_at": anchor})
            members[pid] = [user_ids[i] for i in sorted(chosen, key=lambda i: (rows[i]["sort_key"], user_ids[i]))]
        for chunk in range(0, len(seats), 10000):
            c.execute(insert(Seat.__table__), seats[chunk:chunk + 10000])
        return BenchTenant(account_id, tenant_id, admin_aad, n_users, admins, pool_ids, members)

    return lic.db.write(work)


def bench_tenants(lic: Licensing) -> tuple[BenchTenant, list[BenchTenant]]:
    """The measured tenant (10,000 users, 10 pools) and 4 neighbours (10 pools each): 50 pools."""
    main = make_tenant(lic, MAIN_TENANT, MAIN_ADMIN, "Contoso Bench", MAIN_POOLS, admins=MAIN_ADMINS)
    others = [make_tenant(lic, f"00000000-0000-0000-0000-00000000b00{k}", f"00000000-0000-0000-0000-00000000a00{k}",
                          f"Neighbour {k}", NEIGHBOUR_POOLS, domain=f"neighbour{k}.example") for k in range(2, 6)]
    return main, others
