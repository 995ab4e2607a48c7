"""Demo data: the Contoso account bound to the Agents Playground's tenant."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from core.kinds import AuditAction
from core.licensing import Licensing
from core.models import Account, AccountDomain, AccountTenant, Discount, Pool, Seat, Subscription
from core.periods import period_containing

TENANT = "00000000-0000-0000-0000-0000000000001"
ADMIN_AAD = "00000000-0000-0000-0000-0000000000020"

# The Playground's current user and its five other users come first, with its ids.
PEOPLE = [
    ("00000000-0000-0000-0000-0000000000020", "Alex Wilber", "admin"),
    ("00000000-0000-0000-0000-0000000000021", "Megan Bowen", "admin"),
    ("00000000-0000-0000-0000-0000000000022", "Lee Gu", "member"),
    ("00000000-0000-0000-0000-0000000000023", "Nestor Wilke", "member"),
    ("00000000-0000-0000-0000-0000000000024", "Patti Fernandez", "member"),
    ("00000000-0000-0000-0000-0000000000025", "Isaiah Langer", "member"),
]
FIRST = ["Adele", "Allan", "Christie", "Debra", "Diego", "Emily", "Enrico", "Grady", "Henrietta", "Irvin",
         "Johanna", "Joni", "Lidia", "Lynne", "Miriam", "Nathan", "Pradeep", "Raul", "Sanjay", "Zoë"]
LAST = ["Vance", "Deyoung", "Cline", "Berg", "Siciliani", "Braun", "Cattaneo", "Archie", "Mueller", "Sink",
        "Lauer", "Sherman", "Holloway", "Patterson", "Gracey", "Ortiz", "Gupta", "Rodríguez", "Narayan", "Ølsen"]

# (interval, plan, bought, assigned)
POOLS = [
    ("month", "eco", 30, 24),
    ("month", "advanced", 15, 12),
    ("month", "pro", 6, 4),
    ("year", "pro", 10, 8),
    ("month", "api_advanced", 10, 6),
    ("year", "api_pro", 5, 4),
]


def load_demo(lic: Licensing, now: datetime | None = None) -> bool:
    """Create the demo account; does nothing (returns False) if it exists already."""
    now = (now or lic.now()).replace(microsecond=0)

    def work(u) -> bool:
        s = u.s
        if s.get(AccountTenant, TENANT) is not None:
            return False
        account = Account(name="Contoso", currency="USD", created_at=now)
        s.add(account)
        s.flush()
        s.add(AccountTenant(tenant_id=TENANT, account_id=account.id))
        s.add(AccountDomain(account_id=account.id, domain="contoso.com"))
        s.add(Discount(account_id=account.id, label="Partner discount", percent_off=Decimal("15"),
                       starts_at=now - timedelta(days=60), ends_at=None))
        people = list(PEOPLE)
        for i in range(54):
            first, last = FIRST[i % len(FIRST)], LAST[(i * 7 + i // len(FIRST)) % len(LAST)]
            people.append((f"00000000-0000-0000-0001-{i:012d}", f"{first} {last}", "member"))
        users = []
        for aad, name, role in people:
            email = ".".join(name.lower().replace("ë", "e").replace("í", "i").replace("ø", "o").split())
            users.append(lic.accounts.insert_user(s, account.id, aad, f"{email}@contoso.com", name, role))
        subs = {}
        for interval, back in (("month", relativedelta(days=9)), ("year", relativedelta(months=4, days=3))):
            anchor = now - back - relativedelta(months=14 if interval == "month" else 24)
            number, start, end = period_containing(anchor, interval, now)
            subs[interval] = Subscription(account_id=account.id, interval=interval, anchor_at=anchor,
                                          period_number=number, period_start=start, period_end=end, created_at=anchor)
            s.add(subs[interval])
        s.flush()
        # Alex (the admin) holds Pro, Megan Advanced, Lee Gu Eco; the rest fill the pools in order.
        order = {"eco": [2], "advanced": [1], "pro": [0]}
        free_users = [i for i in range(len(users)) if i > 2]
        taken_by_family = {"standard": {0, 1, 2}, "api": set()}
        for interval, code, bought, assigned in POOLS:
            plan = lic.catalog.plan(code)
            pool = Pool(account_id=account.id, subscription_id=subs[interval].id, plan_code=code, quantity=bought,
                        removal_scheduled=0, created_at=subs[interval].anchor_at)
            s.add(pool)
            s.flush()
            chosen = [i for i in order.get(code, []) if interval == "month"]
            for i in free_users:
                if len(chosen) >= assigned:
                    break
                if i not in taken_by_family[plan.family]:
                    chosen.append(i)
            for i in chosen:
                taken_by_family[plan.family].add(i)
                s.add(Seat(account_id=account.id, pool_id=pool.id, user_id=users[i].id, family=plan.family,
                           sort_key=users[i].sort_key, assigned_at=subs[interval].anchor_at))
        u.audit_ok(None, AuditAction.DEMO_LOADED, f"account:{account.id}", account_id=account.id)
        return True

    return lic.units.system_write(work)


def demo_account_id(lic: Licensing) -> int | None:
    with lic.db.read() as s:
        return s.scalar(select(AccountTenant.account_id).where(AccountTenant.tenant_id == TENANT))
