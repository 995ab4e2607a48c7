"""The assign journey's cards: the user picker, the plan step, the confirmation, and the
notice the user receives."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from babel.dates import format_timedelta

from cards.base import action_set, card, choice_set, column, columns, execute, facts, input_text, text, title
from cards.data import AssignChoice, BuyStart, Origin, PickerPage, PoolRef
from cards.i18n import Locale, T, babel_locale
from cards.verbs import Verb
from core.views import Page, PoolView, UserRow

DIRECTORY_PREFIX = "aad:"  # a picked person from the tenant's directory, not yet a user of the account


@dataclass(frozen=True)
class DirectoryChoice:
    """A person found in the tenant's directory who is not a user of the account yet."""

    aad_object_id: str
    name: str
    email: str



def _held(t: T, plan_code: str | None, plan_names: dict[str, str]) -> str:
    codes = [c for c in (plan_code or "").split(",") if c]
    if not codes:
        return t("assign.holds_nothing")
    return t("assign.holds", plans=", ".join(plan_names.get(c, c) for c in codes))


def _user_choice(t: T, u: UserRow, plan_names: dict[str, str]) -> tuple[str, str]:
    return f"{u.name} — {u.email} · {_held(t, u.plan_code, plan_names)}"[:200], str(u.id)


def _directory_choice(t: T, p: DirectoryChoice) -> tuple[str, str]:
    return f"{p.name} — {p.email} · {t('assign.from_directory')}"[:200], f"{DIRECTORY_PREFIX}{p.aad_object_id}"


def user_choices(locale: Locale, users: list[UserRow], people: list[DirectoryChoice],
                 plan_names: dict[str, str]) -> list[tuple[str, str]]:
    """The (title, value) of each person found: users of the account, then directory people."""
    t = T(locale)
    return [_user_choice(t, u, plan_names) for u in users] + [_directory_choice(t, p) for p in people]


def buy_action(locale: Locale, buy: BuyStart) -> dict:
    return execute(T(locale)("assign.btn.buy"), Verb.BUY_START, buy, inputs="none")


def directory_busy(locale, seconds: int) -> str:
    """The directory is throttled for ``seconds`` more: when it can be searched again."""
    wait = format_timedelta(timedelta(seconds=seconds), granularity="second", locale=babel_locale(locale))
    return T(locale)("assign.directory_busy", wait=wait)


def picker_card(locale: Locale, page: Page, people: list[DirectoryChoice], plan_names: dict[str, str], *,
                dataset: str, pool: PoolView | None = None, graph: bool = False, graph_down: bool = False,
                graph_busy: int | None = None, note: str | None = None) -> dict:
    """Step 1: find the user: a search box with paged results (works everywhere, the Agents
    Playground included), and a typeahead over the same directory for Teams."""
    t = T(locale)
    base = PickerPage(page.query, page.page, pool.id if pool is not None else None)
    if pool is not None:
        heading = t("assign.title_pool", plan=pool.plan_name, interval=t.interval(pool.interval))
    else:
        heading = t("assign.title")
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    if pool is not None and pool.assignable <= 0:
        body.append(text(t("assign.pool_full", plan=pool.plan_name, interval=t.interval(pool.interval)),
                         color="Warning"))
        body.append(action_set([buy_action(locale, BuyStart(pool.plan_code, pool.interval))]))
    if graph_busy:
        body.append(text(directory_busy(locale, graph_busy), color="Warning", size_="Small"))
    elif graph_down:
        body.append(text(t("assign.directory_down"), color="Warning", size_="Small"))
    search_data = Origin(pool.id if pool is not None else None)
    body.append(columns([
        column([input_text("q", placeholder=t("assign.search"), value=page.query, max_length=100)]),
        column([action_set([execute(t("btn.search"), Verb.ASSIGN_SEARCH, search_data)])], "auto"),
    ]))
    body.append(choice_set("pick", [], placeholder=t("assign.pick"), style="filtered", dataset=dataset))
    choices = user_choices(locale, page.items, people, plan_names)
    if choices:
        body.append(choice_set("user", choices, label=t("assign.choose_user"), style="expanded"))
    else:
        body.append(text(t("assign.none"), subtle=True))
    count = (t.plural("assign.count_search", "total", total=page.total, query=page.query) if page.query
             else t.plural("assign.count", "total", total=page.total))
    body.append(text(f"{count} · {t('users.page', page=page.page + 1, pages=page.pages)}", subtle=True,
                     size_="Small"))
    if graph and not graph_down and not page.query:
        body.append(text(t("assign.directory_hint"), subtle=True, size_="Small"))
    if not graph and (not page.items or page.query):
        body.append(text(t("assign.only_account"), subtle=True, size_="Small"))
    nav = []
    if page.has_prev:
        nav.append(execute(t("btn.prev"), Verb.ASSIGN_START, replace(base, page=page.page - 1), inputs="none"))
    if page.has_next:
        nav.append(execute(t("btn.next"), Verb.ASSIGN_START, replace(base, page=page.page + 1), inputs="none"))
    if page.query:
        nav.append(execute(t("btn.clear"), Verb.ASSIGN_START, replace(base, page=0, cq=""), inputs="none"))
    if nav:
        body.append(action_set(nav))
    actions = [execute(t("assign.btn.plans"), Verb.ASSIGN_PLANS, base, style="positive"),
               execute(t("btn.back"), Verb.POOLS, inputs="none"),
               execute(t("btn.cancel"), Verb.DISMISS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def plans_card(locale: Locale, user: UserRow, pools: list[PoolView], plan_names: dict[str, str], *,
               back: PickerPage, selected: int | None = None, reason: str | None = None, buy: dict | None = None,
               note: str | None = None) -> dict:
    """Step 2: the plans with a free seat in a family the user does not hold yet; none: why,
    and "Buy one" (the plan the admin wanted pre-selected) when buying would help."""
    t = T(locale)
    heading = t("assign.plans.title", name=user.name)
    body = [title(heading), text(user.email, subtle=True, spacing="None")]
    if note:
        body.append(text(t.say(note), color="Warning"))
    held = [plan_names.get(c, c) for c in (user.plan_code or "").split(",") if c]
    body.append(facts([(t("assign.plans.holds"), ", ".join(held) if held else t("assign.holds_nothing"))]))
    actions = []
    if pools:
        choices = [(t.plural("assign.plans.option", "free", plan=p.plan_name, interval=t.interval(p.interval),
                             free=p.assignable), str(p.id)) for p in pools]
        value = str(selected) if selected in {p.id for p in pools} else str(pools[0].id)
        body.append(choice_set("to_pool", choices, label=t("assign.plans.choose"), value=value, required=True,
                               style="expanded"))
        save = AssignChoice(back.cq, back.page, back.pool, user=user.id)
        actions.append(execute(t("assign.btn.save"), Verb.ASSIGN_SAVE, save, style="positive"))
    elif reason:
        body.append(text(reason))
    if buy is not None:
        actions.append(buy_action(locale, BuyStart(buy.get("plan"), buy.get("interval"))))
    actions += [execute(t("btn.back"), Verb.ASSIGN_START, back, inputs="none"),
                execute(t("btn.cancel"), Verb.DISMISS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def assigned_card(locale: Locale, user: UserRow, pool: PoolView) -> dict:
    """Step 3: done; the pool's seats as they are now."""
    t = T(locale)
    heading = t("assign.done.title")
    body = [title(heading),
            text(t("assign.done.body", name=user.name, plan=pool.plan_name, interval=t.interval(pool.interval)),
                 color="Good"),
            facts([(t("assign.done.free"), t("assign.done.free_value", free=pool.assignable,
                                             quantity=pool.quantity))])]
    actions = [execute(t("assign.btn.again"), Verb.ASSIGN_START, PoolRef(pool.id), inputs="none"),
               execute(t("btn.licenses"), Verb.POOLS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def assigned_notice(locale: Locale, plan_name: str, interval: str | None, by: str | None) -> dict:
    """What the user receives in their chat."""
    t = T(locale)
    heading = t("assign.notice.title")
    when = t.interval(interval) if interval in ("month", "year") else "—"
    body = t("assign.notice.body", by=by, plan=plan_name, interval=when) if by else t(
        "assign.notice.body_system", plan=plan_name, interval=when)
    return card([title(heading), text(body), text(t("assign.notice.install"))], fallback_text=heading)
