"""The assign journey's cards: the user picker, the plan step, the confirmation, and the
notice the user receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from babel.dates import format_timedelta

from cards import verbs
from cards.base import action_set, card, choice_set, column, columns, execute, facts, input_text, text, title
from cards.i18n import Plural, T, add_strings, babel_locale
from core.views import Page, PoolView, UserRow

ASSIGN_SEARCH = "assign.search"  # data: {pool?}; input q
ASSIGN_PLANS = "assign.plans"  # data: {pool?, cq, page}; inputs pick (typeahead) or user (list)
ASSIGN_SAVE = "assign.save"  # data: {user, pool?, cq, page}; input to_pool
DATASET_DIRECTORY = "directory"  # typeahead dataset "directory:<account id>"
DIRECTORY_PREFIX = "aad:"  # a picked person from the tenant's directory, not yet a user of the account


@dataclass(frozen=True)
class DirectoryChoice:
    """A person found in the tenant's directory who is not a user of the account yet."""

    aad_object_id: str
    name: str
    email: str


add_strings({
    "en": {
        "assign.title": "Assign a license",
        "assign.title_pool": "Assign a license: {plan} ({interval})",
        "assign.count": Plural("{total} user in License Desk", "{total} users in License Desk", "total"),
        "assign.count_search": Plural("{total} user in License Desk matching “{query}”",
                                      "{total} users in License Desk matching “{query}”", "total"),
        "assign.search": "Search by name or e-mail",
        "assign.pick": "Or type a name to find anyone",
        "assign.choose_user": "Choose the user",
        "assign.holds": "holds {plans}",
        "assign.holds_nothing": "no license yet",
        "assign.from_directory": "from your organisation's directory, not in License Desk yet",
        "assign.none": "Nobody matches.",
        "assign.only_account": "Only people in your License Desk account are listed. Someone missing? Ask your IT "
                               "administrator to add them to the account.",
        "assign.directory_hint": "Search to also find people of your organisation who are not in License Desk yet.",
        "assign.directory_down": "Your organisation's directory could not be searched just now: only License Desk "
                                 "users are shown. Try again in a minute.",
        "assign.directory_busy": "Your organisation's directory is busy: it can be searched again in {wait}. Only "
                                 "License Desk users are shown meanwhile.",
        "assign.pool_full": "There is no free seat in {plan} ({interval}). Buy one, or unassign someone first.",
        "assign.pick_first": "Choose a user first.",
        "assign.btn.plans": "Choose plan",
        "assign.btn.save": "Save",
        "assign.btn.buy": "Buy one",
        "assign.btn.again": "Assign another",
        "assign.plans.title": "Assign a license to {name}",
        "assign.plans.holds": "Holds",
        "assign.plans.choose": "License",
        "assign.plans.option": Plural("{plan} ({interval}) · {free} free", "{plan} ({interval}) · {free} free", "free"),
        "assign.plans.all_held": "{name} already holds a license of every family. Upgrade or unassign it from the "
                                 "pool's users instead.",
        "assign.plans.no_free": "There is no free seat for {name} in a plan of a family they do not hold yet. Buy "
                                "one, or unassign someone first.",
        "assign.plans.missing": "Choose the license first.",
        "assign.done.title": "License assigned",
        "assign.done.body": "{name} now holds {plan} ({interval}). They have been told in Teams, with what to do "
                            "next.",
        "assign.done.free": "Free seats left in this pool",
        "assign.done.free_value": "{free} of {quantity}",
        "assign.held.title": "Already assigned",
        "assign.notice.title": "You have a new license",
        "assign.notice.body": "{by} assigned you a license: {plan} ({interval}).",
        "assign.notice.body_system": "You were assigned a license: {plan} ({interval}).",
        "assign.notice.install": "If you have not yet, install the client and activate it with your work account "
                                 "to start using it.",
    },
    "fr": {
        "assign.title": "Attribuer une licence",
        "assign.title_pool": "Attribuer une licence : {plan} ({interval})",
        "assign.count": Plural("{total} utilisateur dans License Desk", "{total} utilisateurs dans License Desk",
                               "total"),
        "assign.count_search": Plural("{total} utilisateur dans License Desk pour « {query} »",
                                      "{total} utilisateurs dans License Desk pour « {query} »", "total"),
        "assign.search": "Rechercher par nom ou e-mail",
        "assign.pick": "Ou tapez un nom pour trouver quelqu'un",
        "assign.choose_user": "Choisissez l'utilisateur",
        "assign.holds": "a {plans}",
        "assign.holds_nothing": "pas encore de licence",
        "assign.from_directory": "de l'annuaire de votre organisation, pas encore dans License Desk",
        "assign.none": "Personne ne correspond.",
        "assign.only_account": "Seules les personnes de votre compte License Desk sont listées. Il manque quelqu'un ? "
                               "Demandez à votre administrateur informatique de l'ajouter au compte.",
        "assign.directory_hint": "Lancez une recherche pour trouver aussi les personnes de votre organisation qui ne "
                                 "sont pas encore dans License Desk.",
        "assign.directory_down": "L'annuaire de votre organisation n'a pas pu être consulté : seuls les utilisateurs "
                                 "de License Desk sont affichés. Réessayez dans une minute.",
        "assign.directory_busy": "L'annuaire de votre organisation est surchargé : il pourra de nouveau être "
                                 "consulté dans {wait}. En attendant, seuls les utilisateurs de License Desk sont "
                                 "affichés.",
        "assign.pool_full": "Il n'y a plus de licence libre en {plan} ({interval}). Achetez-en une, ou retirez "
                            "d'abord une licence à quelqu'un.",
        "assign.pick_first": "Choisissez d'abord un utilisateur.",
        "assign.btn.plans": "Choisir l'offre",
        "assign.btn.save": "Enregistrer",
        "assign.btn.buy": "En acheter une",
        "assign.btn.again": "Attribuer une autre licence",
        "assign.plans.title": "Attribuer une licence à {name}",
        "assign.plans.holds": "Licences",
        "assign.plans.choose": "Licence",
        "assign.plans.option": Plural("{plan} ({interval}) · {free} libre", "{plan} ({interval}) · {free} libres",
                                      "free"),
        "assign.plans.all_held": "{name} a déjà une licence de chaque famille. Mettez-la à niveau ou retirez-la "
                                 "depuis les utilisateurs du lot.",
        "assign.plans.no_free": "Il n'y a plus de licence libre pour {name} dans une offre d'une famille qu'il ou "
                                "elle n'a pas encore. Achetez-en une, ou retirez d'abord une licence à quelqu'un.",
        "assign.plans.missing": "Choisissez d'abord la licence.",
        "assign.done.title": "Licence attribuée",
        "assign.done.body": "{name} a maintenant {plan} ({interval}). Il ou elle a été prévenu(e) dans Teams, avec "
                            "la marche à suivre.",
        "assign.done.free": "Licences libres restantes dans ce lot",
        "assign.done.free_value": "{free} sur {quantity}",
        "assign.held.title": "Déjà attribuée",
        "assign.notice.title": "Vous avez une nouvelle licence",
        "assign.notice.body": "{by} vous a attribué une licence : {plan} ({interval}).",
        "assign.notice.body_system": "Une licence vous a été attribuée : {plan} ({interval}).",
        "assign.notice.install": "Si ce n'est pas déjà fait, installez le client et activez-le avec votre compte "
                                 "professionnel pour commencer à l'utiliser.",
    },
})


def _held(t: T, plan_code: str | None, plan_names: dict[str, str]) -> str:
    codes = [c for c in (plan_code or "").split(",") if c]
    if not codes:
        return t("assign.holds_nothing")
    return t("assign.holds", plans=", ".join(plan_names.get(c, c) for c in codes))


def _user_choice(t: T, u: UserRow, plan_names: dict[str, str]) -> tuple[str, str]:
    return f"{u.name} — {u.email} · {_held(t, u.plan_code, plan_names)}"[:200], str(u.id)


def _directory_choice(t: T, p: DirectoryChoice) -> tuple[str, str]:
    return f"{p.name} — {p.email} · {t('assign.from_directory')}"[:200], f"{DIRECTORY_PREFIX}{p.aad_object_id}"


def user_choices(locale: str | None, users: list[UserRow], people: list[DirectoryChoice],
                 plan_names: dict[str, str]) -> list[tuple[str, str]]:
    """The (title, value) of each person found: users of the account, then directory people."""
    t = T(locale)
    return [_user_choice(t, u, plan_names) for u in users] + [_directory_choice(t, p) for p in people]


def buy_action(locale: str | None, buy: dict) -> dict:
    return execute(T(locale)("assign.btn.buy"), verbs.BUY_START, buy, inputs="none")


def directory_busy(locale, seconds: int) -> str:
    """The directory is throttled for ``seconds`` more: when it can be searched again."""
    wait = format_timedelta(timedelta(seconds=seconds), granularity="second", locale=babel_locale(locale))
    return T(locale)("assign.directory_busy", wait=wait)


def picker_card(locale: str | None, page: Page, people: list[DirectoryChoice], plan_names: dict[str, str], *,
                dataset: str, pool: PoolView | None = None, graph: bool = False, graph_down: bool = False,
                graph_busy: int | None = None, note: str | None = None) -> dict:
    """Step 1: find the user: a search box with paged results (works everywhere, the Agents
    Playground included), and a typeahead over the same directory for Teams."""
    t = T(locale)
    base: dict = {"cq": page.query, "page": page.page}
    if pool is not None:
        base["pool"] = pool.id
        heading = t("assign.title_pool", plan=pool.plan_name, interval=t.interval(pool.interval))
    else:
        heading = t("assign.title")
    body = [title(heading)]
    if note:
        body.append(text(t.say(note), color="Warning"))
    if pool is not None and pool.assignable <= 0:
        body.append(text(t("assign.pool_full", plan=pool.plan_name, interval=t.interval(pool.interval)),
                         color="Warning"))
        body.append(action_set([buy_action(locale, {"plan": pool.plan_code, "interval": pool.interval})]))
    if graph_busy:
        body.append(text(directory_busy(locale, graph_busy), color="Warning", size_="Small"))
    elif graph_down:
        body.append(text(t("assign.directory_down"), color="Warning", size_="Small"))
    search_data = {"pool": pool.id} if pool is not None else {}
    body.append(columns([
        column([input_text("q", placeholder=t("assign.search"), value=page.query, max_length=100)]),
        column([action_set([execute(t("btn.search"), ASSIGN_SEARCH, search_data)])], "auto"),
    ]))
    body.append(choice_set("pick", [], placeholder=t("assign.pick"), style="filtered", dataset=dataset))
    choices = user_choices(locale, page.items, people, plan_names)
    if choices:
        body.append(choice_set("user", choices, label=t("assign.choose_user"), style="expanded"))
    else:
        body.append(text(t("assign.none"), subtle=True))
    count = (t("assign.count_search", total=page.total, query=page.query) if page.query
             else t("assign.count", total=page.total))
    body.append(text(f"{count} · {t('users.page', page=page.page + 1, pages=page.pages)}", subtle=True,
                     size_="Small"))
    if graph and not graph_down and not page.query:
        body.append(text(t("assign.directory_hint"), subtle=True, size_="Small"))
    if not graph and (not page.items or page.query):
        body.append(text(t("assign.only_account"), subtle=True, size_="Small"))
    nav = []
    if page.has_prev:
        nav.append(execute(t("btn.prev"), verbs.ASSIGN_START, dict(base, page=page.page - 1), inputs="none"))
    if page.has_next:
        nav.append(execute(t("btn.next"), verbs.ASSIGN_START, dict(base, page=page.page + 1), inputs="none"))
    if page.query:
        nav.append(execute(t("btn.clear"), verbs.ASSIGN_START, dict(base, page=0, cq=""), inputs="none"))
    if nav:
        body.append(action_set(nav))
    actions = [execute(t("assign.btn.plans"), ASSIGN_PLANS, base, style="positive"),
               execute(t("btn.back"), verbs.POOLS, inputs="none"),
               execute(t("btn.cancel"), verbs.DISMISS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def plans_card(locale: str | None, user: UserRow, pools: list[PoolView], plan_names: dict[str, str], *,
               back: dict, selected: int | None = None, reason: str | None = None, buy: dict | None = None,
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
        choices = [(t("assign.plans.option", plan=p.plan_name, interval=t.interval(p.interval), free=p.assignable),
                    str(p.id)) for p in pools]
        value = str(selected) if selected in {p.id for p in pools} else str(pools[0].id)
        body.append(choice_set("to_pool", choices, label=t("assign.plans.choose"), value=value, required=True,
                               style="expanded"))
        actions.append(execute(t("assign.btn.save"), ASSIGN_SAVE, dict(back, user=user.id), style="positive"))
    elif reason:
        body.append(text(reason))
    if buy is not None:
        actions.append(buy_action(locale, buy))
    actions += [execute(t("btn.back"), verbs.ASSIGN_START, back, inputs="none"),
                execute(t("btn.cancel"), verbs.DISMISS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def assigned_card(locale: str | None, user: UserRow, pool: PoolView) -> dict:
    """Step 3: done; the pool's seats as they are now."""
    t = T(locale)
    heading = t("assign.done.title")
    body = [title(heading),
            text(t("assign.done.body", name=user.name, plan=pool.plan_name, interval=t.interval(pool.interval)),
                 color="Good"),
            facts([(t("assign.done.free"), t("assign.done.free_value", free=pool.assignable,
                                             quantity=pool.quantity))])]
    actions = [execute(t("assign.btn.again"), verbs.ASSIGN_START, {"pool": pool.id}, inputs="none"),
               execute(t("btn.licenses"), verbs.POOLS, inputs="none")]
    return card(body, actions, fallback_text=heading)


def assigned_notice(locale: str | None, plan_name: str, interval: str | None, by: str | None) -> dict:
    """What the user receives in their chat."""
    t = T(locale)
    heading = t("assign.notice.title")
    when = t.interval(interval) if interval in ("month", "year") else "—"
    body = t("assign.notice.body", by=by, plan=plan_name, interval=when) if by else t(
        "assign.notice.body_system", plan=plan_name, interval=when)
    return card([title(heading), text(body), text(t("assign.notice.install"))], fallback_text=heading)
