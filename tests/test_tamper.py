"""The tamper suite: every verb the router knows (``router.actions``: a new flow's verbs are
covered without touching this file), replayed with forged data, through real HTTP.

How it finds what to replay: :func:`crawl` plays an administrator and a member through every
text command and clicks every Action.Execute of every card it is shown (once per verb),
recording for each verb the data Teams would send (the action's data and the card's inputs).
A verb no card offered is replayed with generic data naming Contoso's objects.

For every verb, then: another account's ids, a member replaying an administrator's data, the
step replayed after its objects changed (quote cancelled and expired, selected users without
a seat), missing references, 10,000-element arrays, ~900 KB strings, a body over 1 MB, deep
nesting, and unicode / control characters / lone surrogates in every text field; by
``Action.Execute`` (invoke) and, for some, by ``Action.Submit`` (a message). Each answer must be
clear (an invoke answer with a card or a 4xx error, never an HTTP 500 or the apology card), a
refusal must leave a "refused" audit event, no "ok" audit event may appear, and the licensing
tables must not change; no name of the other account may show.

Failures are collected per verb and case and reported together.

The per-user rate limit (``bot/ratelimit.py``) is tested at the end.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select, update

from core.demo import TENANT
from core.models import Quote, Seat
from core.views import Actor
from tests.harness import (
    ALEX,
    FAB_ADMIN,
    FAB_TENANT,
    INVOKE_CARD,
    INVOKE_ERROR,
    INVOKE_MESSAGE,
    LEE,
    Card,
    InputRequired,
    action_data,
    actions_of,
    add_fabrikam,
    audit_mark,
    audit_since,
    eco_pool_id,
    heading_of,
    inputs_of,
    running_desk,
    snapshot,
    text_of,
)

APOLOGY = "Sorry, something went wrong on our side."
FABRIKAM_NAMES = ("Fabrikam", "Ada Fabrikam", "Bo Fabrikam", "fabrikam.com")
REFERENCE_KEYS = ("pool", "quote", "request", "user", "sel", "users", "ids", "pick")  # what names an object
PRIMARY_KEYS = ("pool", "quote", "request")  # the object a step is about: another account's is always refused
SELECTION_KEYS = ("sel", "users", "ids", "pick")
# Control characters, bidi override, zero-width, a lone surrogate, an emoji, combining marks.
NASTY = "\x00\x01\x07\x1b[31m\x7f\x85\u202e\u200b\ud800 Zoë 😀 e\u0301\u0338 \ufeff<b>&amp;"
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


# ============================================================================ discovery


def _fill(card: dict, action: dict) -> dict:
    """The data Teams sends for this action, the way a person would fill the card: the first
    choice of every choice set left empty (someone ticked), then every required input that is
    still empty (a number, a word, today)."""
    inputs: dict[str, Any] = {}
    if action.get("associatedInputs", "auto") != "none":
        for input_id, el in inputs_of(card).items():
            choices = el.get("choices") or []
            if el.get("type") == "Input.ChoiceSet" and el.get("value") in (None, "") and choices:
                inputs[input_id] = choices[0]["value"]
    for _ in range(20):
        try:
            return action_data(card, action, inputs)
        except InputRequired:
            for input_id, el in inputs_of(card).items():
                if input_id in inputs or el.get("value") not in (None, "") or not el.get("isRequired"):
                    continue
                kind = el.get("type")
                if kind == "Input.ChoiceSet":
                    choices = el.get("choices") or []
                    inputs[input_id] = choices[0]["value"] if choices else "1"
                elif kind == "Input.Number":
                    inputs[input_id] = str(max(1, int(el.get("min") or 1)))
                elif kind == "Input.Date":
                    inputs[input_id] = date.today().isoformat()
                elif kind == "Input.Toggle":
                    inputs[input_id] = el.get("valueOn", "true")
                else:
                    inputs[input_id] = "x"
                break
    raise AssertionError(f"cannot fill the inputs of {action.get('title')!r}")


@dataclass
class Sample:
    verb: str
    data: Any
    message_id: str | None
    by: str  # ALEX or LEE
    seen: bool = True  # from a card (False: generic data for a verb no card offered)


@dataclass
class Crawl:
    samples: dict[str, Sample] = field(default_factory=dict)
    cards: int = 0


async def crawl(desk, max_clicks: int = 150) -> Crawl:
    """Every text command, as an administrator and as a member, then every Action.Execute of
    every card shown (each verb clicked once, breadth first)."""
    router = desk.root.router
    out = Crawl()
    clicked: set[str] = set()
    queue: list[tuple[Any, Card]] = []
    for client in (desk.member(), desk.admin()):  # the member first: a pending request for the admin
        for command in router.commands:
            for card in await client.say(command):
                queue.append((client, card))
    clicks = 0
    while queue and clicks < max_clicks:
        client, card = queue.pop(0)
        out.cards += 1
        for action in actions_of(card, "Action.Execute"):
            verb = action.get("verb")
            try:
                data = _fill(card, action)
            except AssertionError:
                continue
            out.samples.setdefault(verb, Sample(verb, data, card.message_id, client.aad_object_id))
            if verb in clicked:
                continue
            clicked.add(verb)
            clicks += 1
            reply = await client.execute(verb, data, message_id=card.message_id)
            if reply.card is not None:
                queue.append((client, reply.card))
        if not queue and clicks < max_clicks:  # requests made by the member reach the admin's list
            for command in ("requests",):
                if command in router.commands:
                    for c in await desk.admin().say(command):
                        if any(a.get("verb") not in clicked for a in actions_of(c, "Action.Execute")):
                            queue.append((desk.admin(), c))
    return out


def _quote_of(desk) -> str:
    return desk.lic.quotes.quote_upgrade(Actor(TENANT, ALEX), eco_pool_id(desk), [desk.user("Adele Vance").id],
                                         "pro").id


def generic_data(desk) -> dict:
    """Data naming Contoso's objects (made before the crawl changes them)."""
    return {"pool": eco_pool_id(desk), "quote": _quote_of(desk), "sel": [desk.user("Adele Vance").id],
            "users": str(desk.user("Alex Wilber").id), "user": desk.user("Adele Vance").id, "request": 1}


def samples_for_every_verb(desk, found: Crawl, generic: dict) -> dict[str, Sample]:
    """The crawl's samples, and the generic data for verbs no card offered."""
    router = desk.root.router
    return {verb: found.samples.get(verb) or Sample(verb, dict(generic), None, ALEX, seen=False)
            for verb in sorted(router.actions)}


# ============================================================================ one tampered request


class Problems(list):
    def add(self, verb: str, case: str, what: str) -> None:
        self.append(f"{verb} [{case}]: {what}")

    def check(self):
        assert not self, f"{len(self)} problem(s):\n" + "\n".join(self)


def _strings(rows: dict[str, list[tuple]]) -> list[str]:
    return [v for table in rows.values() for row in table for v in row if isinstance(v, str)]


async def replay(desk, client, verb: str, data: Any, case: str, problems: Problems, *,
                 message_id: str | None = None, must_refuse: bool = False, may_store_text: bool = False,
                 submit: bool = False) -> None:
    """Send one tampered action and check everything the suite promises about its answer."""
    before, mark = snapshot(desk.lic), audit_mark(desk.lic)
    shown = ""
    refused_answer = False
    if submit:
        value = dict(data, verb=verb) if isinstance(data, dict) else {"verb": verb, "data": data}
        try:
            cards = await client.submit_value(value, message_id=message_id)
        except AssertionError as e:  # the harness saw an HTTP 5xx
            problems.add(verb, case, f"crashed: {str(e)[:200]}")
            return
        if len(cards) != 1:
            problems.add(verb, case, f"{len(cards)} cards answered an Action.Submit")
            return
        shown = text_of(cards[0])
        refused_answer = _is_refusal(cards[0])
    else:
        try:
            reply = await client.execute(verb, data, message_id=message_id)
        except AssertionError as e:
            problems.add(verb, case, f"crashed: {str(e)[:200]}")
            return
        if reply.http_status != 200:
            problems.add(verb, case, f"HTTP {reply.http_status}")
            return
        if reply.type == INVOKE_ERROR:
            if not (400 <= (reply.status_code or 0) < 500 and reply.value.get("message")):
                problems.add(verb, case, f"unclear error answer {dict(reply)}")
            shown, refused_answer = json.dumps(reply.value), True
        elif reply.type == INVOKE_CARD and reply.card:
            shown, refused_answer = text_of(reply.card), _is_refusal(reply.card)
        elif reply.type == INVOKE_MESSAGE:
            shown = str(reply.value)
        else:
            problems.add(verb, case, f"unexpected answer {str(dict(reply))[:200]}")
            return
    if APOLOGY in shown:
        problems.add(verb, case, "the apology card (an exception inside the bot)")
    if any(name in shown for name in FABRIKAM_NAMES) and client.tenant_id != FAB_TENANT:
        problems.add(verb, case, "another account's names are shown")
    events = audit_since(desk.lic, mark)
    if any(e.outcome == "ok" for e in events):
        problems.add(verb, case, f"something was done: {[(e.action, e.outcome) for e in events]}")
    refusals = [e for e in events if e.outcome == "refused"]
    if (refused_answer or must_refuse) and not refusals:
        problems.add(verb, case, f"refused without an audit event (answer: {shown[:120]!r})")
    if must_refuse and not (refused_answer or refusals):
        problems.add(verb, case, f"not refused: {shown[:160]!r}")
    after = snapshot(desk.lic)
    changed = [t for t in before if before[t] != after[t]]
    if changed and not may_store_text:
        problems.add(verb, case, f"tables changed: {changed}")
    if changed and may_store_text:
        stored = [s for s in _strings({t: after[t] for t in changed}) if CONTROL.search(s)]
        if stored:
            problems.add(verb, case, f"control characters stored: {stored[:2]!r}")


def _is_refusal(card: dict) -> bool:
    return heading_of(card) in {"That didn't work", "Administrators only", "You are not set up yet"}


def _swap_ids(data: Any, fab: dict) -> tuple[Any, set[str]]:
    """The data with every object reference replaced by one of Fabrikam's (same shape), and
    the keys replaced."""
    if not isinstance(data, dict):
        return data, set()
    out, swapped = dict(data), set()
    for key, value in data.items():
        if key not in REFERENCE_KEYS or value in (None, "", []):
            continue
        theirs = {"pool": fab["pool"], "quote": fab["quote"], "request": fab.get("request", fab["pool"]),
                  "user": fab["worker"]}.get(key, fab["worker"])
        if isinstance(value, list):
            out[key] = [theirs]
        elif isinstance(value, str) and key != "quote":
            out[key] = str(theirs)
        else:
            out[key] = theirs
        swapped.add(key)
    return out, swapped


# ============================================================================ the suite


@pytest.fixture
async def world(desk):
    """Fabrikam (another account, with an open quote), then the crawl of Contoso's cards."""
    fab = add_fabrikam(desk.lic, upgrade_quote="pro")
    generic = generic_data(desk)
    found = await crawl(desk)
    samples = samples_for_every_verb(desk, found, generic)
    return fab, found, samples


async def test_the_crawl_reaches_most_verbs(desk, world):
    _, found, samples = world
    router = desk.root.router
    assert set(samples) == set(router.actions)
    missing = sorted(set(router.actions) - set(found.samples))
    # verbs no card offers in the demo account are still replayed, with generic data
    assert len(found.samples) >= len(router.actions) * 2 // 3, (found.cards, missing)


async def test_another_accounts_ids(desk, world):
    fab, _, samples = world
    problems = Problems()
    alex = desk.admin()
    for verb, sample in samples.items():
        data, swapped = _swap_ids(sample.data, fab)
        if not swapped:
            continue  # nothing in it names an object
        # a step about another account's pool, quote or request is refused; other ids (a user in
        # a selection, a pick) may be ignored, but never shown, used or left unaudited if refused
        refuse = sample.seen and bool(swapped & set(PRIMARY_KEYS))
        await replay(desk, alex, verb, data, "Fabrikam's ids", problems, message_id=sample.message_id,
                     must_refuse=refuse)
        await replay(desk, alex, verb, data, "Fabrikam's ids, Action.Submit", problems,
                     message_id=sample.message_id, must_refuse=refuse, submit=True)
    # and Fabrikam's admin replaying Contoso's data
    ada = desk.client(FAB_ADMIN, tenant_id=FAB_TENANT, name="Ada Fabrikam")
    for verb, sample in samples.items():
        if isinstance(sample.data, dict) and any(k in sample.data for k in REFERENCE_KEYS):
            refuse = sample.seen and any(k in sample.data for k in PRIMARY_KEYS)
            await replay(desk, ada, verb, sample.data, "Contoso's ids from Fabrikam", problems, must_refuse=refuse)
    problems.check()


async def test_a_member_replaying_an_administrators_data(desk, world):
    _, _, samples = world
    problems = Problems()
    lee = desk.member()
    for verb, sample in samples.items():
        if sample.by == LEE:
            continue  # a member's own step
        await replay(desk, lee, verb, sample.data, "as a member", problems, message_id=sample.message_id)
    problems.check()


async def test_stale_steps(desk, world, clock):
    """The objects a card named changed since it was shown: its quotes are cancelled (or
    expired), the users it selected no longer hold a seat. Replaying any step does nothing."""
    _, _, samples = world
    lic = desk.lic

    def stale(s):
        s.execute(update(Quote).where(Quote.status == "open").values(status="cancelled"))
        selected: set[int] = set()
        for sample in samples.values():
            for key in SELECTION_KEYS:
                value = sample.data.get(key) if isinstance(sample.data, dict) else None
                for part in (value if isinstance(value, list) else str(value or "").split(",")):
                    if str(part).strip().isdigit():
                        selected.add(int(part))
        for seat in s.scalars(select(Seat).where(Seat.user_id.in_(selected))):
            s.delete(seat)

    lic.db.write(stale)
    clock.advance(minutes=31)
    problems = Problems()
    for verb, sample in samples.items():
        data = sample.data if isinstance(sample.data, dict) else {}
        if not (data.get("quote") or any(data.get(k) for k in SELECTION_KEYS)):
            continue  # the step names nothing that went stale
        client = desk.member() if sample.by == LEE else desk.admin()
        await replay(desk, client, verb, sample.data, "stale", problems, message_id=sample.message_id)
    problems.check()


async def test_missing_references(desk, world):
    _, _, samples = world
    problems = Problems()
    alex = desk.admin()
    for verb, sample in samples.items():
        cases: list[tuple[str, Any]] = [("no data", None), ("empty data", {})]
        if isinstance(sample.data, dict):
            cases += [(f"without {k}", {x: v for x, v in sample.data.items() if x != k})
                      for k in sample.data if k in REFERENCE_KEYS]
            cases += [(f"{k} null", dict(sample.data, **{k: None})) for k in sample.data if k in REFERENCE_KEYS]
        for case, data in cases:
            await replay(desk, alex, verb, data, case, problems, message_id=sample.message_id)
    problems.check()


async def test_oversized_fields(desk, world):
    _, _, samples = world
    problems = Problems()
    alex = desk.admin()
    huge_text = "Z" * 900_000  # a 900 KB field: the body stays under the 1 MB limit
    every_key = (("10,000 numbers", list(range(1, 10_001))), ("a 900 KB string", huge_text))
    one_key = (("10,000 strings", ["1"] * 10_000), ("a 2**70 number", 2**70),
               ("10,000 keys", {str(i): i for i in range(10_000)}))
    for verb, sample in samples.items():
        keys = list(sample.data) if isinstance(sample.data, dict) and sample.data else ["pool"]
        base = sample.data if isinstance(sample.data, dict) else {}
        cases = [(key, case, value) for key in keys for case, value in every_key]
        main = next((k for k in keys if k in REFERENCE_KEYS), keys[0])  # the object the step is about
        cases += [(main, case, value) for case, value in one_key]
        for key, case, value in cases:
            await replay(desk, alex, verb, dict(base, **{key: value}), f"{key}: {case}", problems,
                         message_id=sample.message_id)
    problems.check()


async def test_bodies_too_large_or_too_deep(desk, world):
    _, _, samples = world
    alex = desk.admin()
    before, mark, calls = snapshot(desk.lic), audit_mark(desk.lic), desk.connector.mark()
    for verb in list(samples)[:3]:
        activity = alex.activity("invoke", name="adaptiveCard/action",
                                 value={"action": {"type": "Action.Execute", "verb": verb,
                                                   "data": {"pool": 1, "padding": "x" * (1024 * 1024 + 1)}}})
        res = await desk.post_json("/api/messages", activity)
        assert res.status == 413, (verb, res.status, res.text[:200])
    for depth in (1_000, 100_000):  # nested arrays: the JSON parser's recursion
        deep = "[" * depth + "]" * depth
        body = json.dumps(alex.activity("invoke", name="adaptiveCard/action", value={"x": 1}))
        action = '{"action": {"type": "Action.Execute", "verb": "pools", "data": {"pool": ' + deep + "}}}"
        body = body.replace('{"x": 1}', action)
        res = await desk.post_raw("/api/messages", body)
        assert res.status in (200, 400), (depth, res.status, res.text[:200])
    message = alex.activity("message", text="x", value={"verb": "pools", "pool": json.loads("[" * 500 + "]" * 500)})
    res = await desk.post_json("/api/messages", message)
    assert res.status < 300, res.status
    assert snapshot(desk.lic) == before
    assert all(e.outcome == "refused" for e in audit_since(desk.lic, mark))
    assert all(c.kind in ("reply",) for c in desk.connector.calls[calls:])


async def test_unicode_and_control_characters(desk, world):
    _, _, samples = world
    problems = Problems()
    for verb, sample in samples.items():
        if not isinstance(sample.data, dict):
            continue
        client = desk.member() if sample.by == LEE else desk.admin()
        texts = [k for k, v in sample.data.items() if isinstance(v, str)] or ["q"]
        for key in texts:
            for case, value in (("nasty text", NASTY), ("nasty text in ids", f"1,{NASTY},2")):
                # free text may be kept (a request's note...), cleaned; anything else changes nothing
                await replay(desk, client, verb, dict(sample.data, **{key: value}), f"{key}: {case}", problems,
                             message_id=sample.message_id, may_store_text=True)
    # and as typed text (commands, unknown text echoed in the help card)
    alex = desk.admin()
    for text in (NASTY, "licenses" + NASTY, "\x00" * 3000, "😀" * 5000):
        mark = audit_mark(desk.lic)
        try:
            cards = await alex.say(text)
        except AssertionError as e:
            problems.add("text", repr(text[:20]), f"crashed: {str(e)[:200]}")
            continue
        if len(cards) != 1 or APOLOGY in text_of(cards[0]):
            problems.add("text", repr(text[:20]), f"answer: {[text_of(c)[:100] for c in cards]}")
        elif CONTROL.search(json.dumps(cards[0], ensure_ascii=False).replace("\\u", "")):
            problems.add("text", repr(text[:20]), "control characters echoed in the card")
        assert all(e.outcome == "refused" for e in audit_since(desk.lic, mark))
    problems.check()


# ============================================================================ rate limit


async def test_rate_limit_on_card_actions(db, clock):
    async with running_desk(db=db, clock=clock, RATE_LIMIT_ACTIONS="20/10 seconds") as desk:
        alex, lee = desk.admin(), desk.member()
        [pools] = await alex.say("licenses")  # 1
        eco = eco_pool_id(desk)
        for _ in range(19):  # 2..20
            assert (await alex.execute("pool.users", {"pool": eco}, message_id=pools.message_id)).type == INVOKE_CARD
        before, mark, calls = snapshot(desk.lic), audit_mark(desk.lic), desk.connector.mark()
        shown = alex.card_in(pools.message_id)
        for i in range(30):
            reply = await alex.execute("quote.confirm", {"quote": "0" * 32}, message_id=pools.message_id)
            # Teams shows the text; the card the user clicked stays as it is
            assert reply.http_status == 200 and reply.type == INVOKE_MESSAGE, (i, dict(reply))
            assert reply.value.startswith("That is a lot of requests in a few seconds.")
        assert alex.card_in(pools.message_id) == shown
        [event] = audit_since(desk.lic, mark)  # one audit row for the whole burst
        assert (event.action, event.outcome, event.target) == ("rate.limited", "refused", "action:quote.confirm")
        assert event.tenant_id == TENANT and event.detail["code"] == "rate_limited" and "message" in event.detail
        # messages count too: the first over the limit gets a "slow down" card (audited), the rest nothing
        [card] = await alex.say("licenses")
        assert heading_of(card) == "Slow down" and "Nothing was changed" in text_of(card)
        assert await alex.say("licenses") == [] and await alex.submit_value({"verb": "pools"}) == []
        assert len(desk.connector.calls[calls:]) == 1
        # typeahead has its own budget; another user has theirs
        found = await alex.invoke("application/search", {"queryText": "ad", "dataset": f"pool_users:{eco}",
                                                         "queryOptions": {"skip": 0, "top": 15}})
        assert found.value["results"]
        [card] = await lee.say("help")
        assert heading_of(card) == "What I can do"
        assert snapshot(desk.lic) == before
        assert [e.target for e in audit_since(desk.lic, mark)] == ["action:quote.confirm", "message:"]


async def test_rate_limit_window_moves_and_searches(db, clock):
    async with running_desk(db=db, clock=clock, RATE_LIMIT_ACTIONS="3/1 second",
                            RATE_LIMIT_SEARCHES="2/1 second") as desk:
        alex = desk.admin()
        eco = eco_pool_id(desk)
        search = {"queryText": "ad", "dataset": f"pool_users:{eco}", "queryOptions": {"skip": 0, "top": 15}}
        results = [(await alex.invoke("application/search", search)).value["results"] for _ in range(4)]
        assert [bool(r) for r in results] == [True, True, False, False]  # over the limit: no results
        other = [await alex.invoke("composeExtension/query", {}) for _ in range(4)]
        assert [r.http_status for r in other[:3]] == [200, 200, 200]  # within the limit: the documented answer
        assert all(r["composeExtension"]["type"] == "message" for r in other[:3])
        assert other[3].http_status == 200 and other[3].status_code == 429 and other[3].type == INVOKE_ERROR
        events = audit_since(desk.lic, 0)
        assert sorted(e.target for e in events if e.action == "rate.limited") == [
            "invoke:composeExtension/query", "search:application/search"]
        await asyncio.sleep(1.1)  # a moving window: a user who waits gets their budget back
        assert (await alex.invoke("application/search", search)).value["results"]
        [card] = await alex.say("licenses")
        assert heading_of(card).startswith("License pools")


def test_rate_limit_defaults():
    from bot.ratelimit import RateLimiter
    from core.config import Settings

    assert RateLimiter.from_settings(Settings()) is None  # local mode: none unless asked
    prod = RateLimiter.from_settings(Settings(MicrosoftAppId="app"))
    assert str(prod.items["action"]) == "20 per 10 second" and str(prod.items["search"]) == "60 per 10 second"
    off = RateLimiter.from_settings(Settings(MicrosoftAppId="app", RATE_LIMIT_ACTIONS="off"))
    assert off.items["action"] is None and off.items["search"] is not None
    with pytest.raises(ValueError):
        Settings(RATE_LIMIT_ACTIONS="lots")


# ============================================================================ slow clients


async def _trickle(port: int, first: bytes, rest: bytes, *, every: float, limit: float) -> float | None:
    """Send ``first`` at once, then ``rest`` one byte every ``every`` seconds; how long until the
    server closed the connection, or None if it was still open after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(first)
        for i in range(len(rest)):
            if loop.time() - start > limit:
                return None
            writer.write(rest[i:i + 1])
            await writer.drain()
            try:  # the server closing shows as EOF (or a reset) on the next read
                if await asyncio.wait_for(reader.read(1024), every) == b"":
                    return loop.time() - start
            except TimeoutError:
                pass
    except (ConnectionError, OSError):
        return loop.time() - start
    finally:
        writer.close()
    return None


async def test_slow_clients_are_dropped_in_the_header_and_the_body_phase(db, clock, monkeypatch, caplog):
    """Slow loris: connections trickling a byte at a time are closed once the header phase
    (aiohttp's keep-alive timer, armed when a connection opens) or the body phase (the app's
    body timeout) has lasted its limit, here shortened to 1 s; meanwhile the app serves others."""
    import web.app as web_app

    monkeypatch.setattr(web_app, "SERVER_OPTIONS", {**web_app.SERVER_OPTIONS, "keepalive_timeout": 1.0})
    monkeypatch.setattr(web_app, "BODY_SECONDS", 1.0)
    async with running_desk(db=db, clock=clock) as desk:
        port = int(desk.url.rsplit(":", 1)[1])
        header = b"POST /pay/" + b"t" * 32 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        body = (b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 5000\r\n\r\n")
        slow = [_trickle(port, header, b"X-Pad: " + b"p" * 500, every=0.1, limit=8.0) for _ in range(10)]
        slow += [_trickle(port, body, b" " * 5000, every=0.1, limit=8.0) for _ in range(10)]
        tasks = [asyncio.ensure_future(t) for t in slow]
        await asyncio.sleep(0.3)
        [card] = await desk.admin().say("licenses")  # served while they trickle
        assert heading_of(card).startswith("License pools")
        closed_after = await asyncio.gather(*tasks)
    assert all(t is not None and t < 4.0 for t in closed_after), closed_after
    dropped = [r for r in caplog.records if "body not received within" in r.getMessage()]
    assert len(dropped) == 10 and not [r for r in caplog.records if r.exc_info]
