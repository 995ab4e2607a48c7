"""A pool of 10,000 users: every card of the upgrade journey, rendered through the real app
(HTTP, fake connector), stays under Teams' 28 KB budget and is a valid Adaptive Card; search
finds a user by part of a name, accent-insensitively, on the first page."""

from __future__ import annotations

from core.text import fold
from tests.cardcheck import TEAMS_CARD_LIMIT, assert_valid_cards, card_size
from tests.harness import (
    add_pool_users,
    choices_of,
    find_action,
    heading_of,
    pool_button,
    selected,
    text_of,
)

POOL_SIZE = 10_000
FIRST = ["Ana", "Bjørn", "Chloé", "Dmitri", "Élodie", "Farid", "Gaël", "Hana", "Ivo", "Józef", "Kai", "Léa", "Mateo",
         "Nadia", "Oskar", "Paula", "Rémi", "Sofía", "Tomás", "Uma", "Vera", "Wen", "Xavier", "Yara", "Zoltán",
         "Anaïs", "Benoît", "Çelik", "Dörte", "Eero", "Fañch", "Gintarė"]
STEM = ["Bar", "Cor", "Dal", "Fen", "Gar", "Hol", "Kes", "Lor", "Mar", "Nor", "Pel", "Ros", "Sal", "Tor", "Val", "Wes"]
END = ["ton", "ley", "berg", "mann", "ford", "wick", "dale", "son", "eau", "ini", "ez", "ov", "ski", "sen", "er",
       "ård", "ić", "és", "ø", "ão"]
TARGET = ("Zoë Quiñonero-Łaska", "zq@contoso.com")  # the e-mail does not repeat the name: found by the name


def people(n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        first, last = FIRST[i % len(FIRST)], STEM[(i // len(FIRST)) % len(STEM)] + END[(i // 512) % len(END)]
        name = f"{first} {last}"
        out.append((name, f"{fold(first)}.{fold(last)}.{i}@contoso.com".replace("ø", "o")))
    return out


async def test_cards_of_a_10000_user_pool_stay_small_and_valid(desk):
    alex = desk.admin()
    [pools] = await alex.say("licenses")
    eco = pool_button(pools, "Eco", "monthly")["data"]["pool"]
    crowd = people(POOL_SIZE - 24 - 1) + [TARGET]  # the demo pool has 24 users already
    assert not any("quin" in fold(name) for name, _ in crowd[:-1])
    add_pool_users(desk.lic, eco, crowd)

    shown: dict[str, dict] = {}
    [pools] = await alex.say("licenses")
    shown["pools"] = pools
    assert pool_button(pools, "Eco", "monthly")["title"] == str(POOL_SIZE)

    first = (await alex.act(pools, pool_button(pools, "Eco", "monthly"))).expect_card()
    assert heading_of(first) == f"Eco (monthly): {POOL_SIZE} users" and "Page 1 of 500" in text_of(first)
    shown["users: first page"] = first
    # a page chosen by its number (the Next button's keyset left out: it would name page 2's rows)
    next_data = {k: v for k, v in find_action(first, "Next")["data"].items() if k != "keyset"}
    middle = (await alex.execute("pool.users", dict(next_data, page=249), message_id=first.message_id)).expect_card()
    assert "Page 250 of 500" in text_of(middle)
    shown["users: middle page"] = middle
    last = (await alex.execute("pool.users", dict(next_data, page=499), message_id=first.message_id)).expect_card()
    assert "Page 500 of 500" in text_of(last) and len(choices_of(last, "users")) == 20
    shown["users: last page"] = last

    # 20 ticked on page 1, shown on page 3: they travel in the actions' data
    everyone = ",".join(v for _, v in choices_of(first, "users"))
    page2 = (await alex.act(first, "Next", users=everyone)).expect_card()
    page3 = (await alex.act(page2, "Next")).expect_card()
    assert "Page 3 of 500 · 20 users selected" in text_of(page3)
    shown["users: page 3, 20 selected elsewhere"] = page3

    # tick every user of 12 pages and 10 of the 13th: 250, the most a quote takes
    card = first
    for _ in range(12):
        card = (await alex.act(card, "Next", users=",".join(v for _, v in choices_of(card, "users")))).expect_card()
    assert "240 users selected" in text_of(card)
    shown["users: 240 selected elsewhere"] = card
    ten = ",".join(v for _, v in choices_of(card, "users")[:10])
    tiers = (await alex.act(card, "Choose tier", users=ten)).expect_card()
    assert heading_of(tiers) == "Upgrade 250 users from Eco"
    shown["tiers: 250 users"] = tiers

    # search by part of a name, accent-insensitive, from the text box and the typeahead
    for query in ("quino", "QUIÑO", "łask", "lask", "zoe quin"):
        found = (await alex.act(first, "Search", q=query)).expect_card()
        assert [t for t, _ in choices_of(found, "users")] == [f"{TARGET[0]} — {TARGET[1]}"], query
        assert "Page 1 of 1" in text_of(found)
    shown["users: search results"] = found
    broad = (await alex.act(first, "Search", q="Bjørn")).expect_card()
    assert all(t.startswith("Bjørn ") for t, _ in choices_of(broad, "users")) and len(choices_of(broad, "users")) == 20
    shown["users: broad search"] = broad
    typeahead = await alex.search(first, "pick", "quiño")
    assert typeahead.http_status == 200
    [hit] = typeahead.value["results"]
    assert hit["title"] == f"{TARGET[0]} — {TARGET[1]}"
    picked = (await alex.act(first, "Add to selection", pick=hit["value"])).expect_card()
    assert "1 user selected" in text_of(picked) and hit["value"] not in selected(picked, "users")
    assert len((await alex.search(first, "pick", "a")).value["results"]) == 15  # at most 15 a query

    quote = (await alex.act(tiers, "Upgrade", plan="pro")).expect_card()
    assert heading_of(quote) == "Upgrade quote" and "and 240 more" in text_of(quote)
    shown["quote: 250 users"] = quote
    assert (await desk.post_form(alex.open_url(quote, "Pay …"), {"action": "pay"})).status == 200
    paid = (await alex.act(quote, "Refresh")).expect_card()
    assert heading_of(paid) == "Upgrade paid" and "250 users now hold Pro" in text_of(paid)
    shown["paid summary: 250 users"] = paid
    [pools] = await alex.say("licenses")
    assert pool_button(pools, "Pro", "monthly")["title"] == str(4 + 250)
    shown["pools after"] = pools

    sizes = {name: card_size(c) for name, c in shown.items()}
    over = {name: size for name, size in sizes.items() if size >= TEAMS_CARD_LIMIT}
    assert not over, f"over {TEAMS_CARD_LIMIT} bytes: {over}"
    assert_valid_cards(list(shown.values()))
