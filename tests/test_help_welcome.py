"""Help and welcome per role, in English and French, through real HTTP; and the person who
is not (yet) in the account told whom to ask — by name."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from cards.i18n import STRINGS, T
from core.demo import TENANT
from core.errors import NotAdmin, UnknownCaller
from core.models import User
from core.text import sort_key
from core.views import Actor
from tests.cardcheck import assert_valid_cards
from tests.harness import (
    ALEX,
    LEE,
    audit_mark,
    audit_since,
    facts_of,
    has_action,
    heading_of,
    snapshot,
    text_of,
)

NEWCOMER = "66666666-6666-6666-6666-666666666666"
NOWHERE_TENANT = "77777777-7777-7777-7777-777777777777"
LOCALES = [("en-US", "en"), ("fr-FR", "fr")]


def router(desk):
    return desk.root.router


def expected_commands(desk, locale: str, is_admin: bool) -> dict[str, str]:
    """The help's lines: each command's word in the reader's language, with its description."""
    t = T(locale)
    return {t(f"word.{name}"): t(f"cmd.{name}") for name in router(desk).command_names(is_admin)}


def admin_only(desk, locale: str = "en-US") -> set[str]:
    """The words of the admin-only commands, as the help shows them in that language."""
    return {T(locale)(f"word.{name}") for name, spec in router(desk).commands.items() if spec.admin}


async def test_every_command_is_described_in_english_and_french(desk):
    """A flow that registers a command must describe it (``cmd.<name>``) in both languages,
    or the help card could not list it."""
    r = router(desk)
    assert {"licenses", "audit", "help"} <= set(r.commands)
    for name in r.commands:
        for lang in ("en", "fr"):
            assert STRINGS[lang].get(f"cmd.{name}"), f"cmd.{name} has no {lang} description"
    assert r.commands["audit"].admin and r.commands["licenses"].admin and not r.commands["help"].admin


@pytest.mark.parametrize("locale, lang", LOCALES)
async def test_help_lists_the_commands_of_the_role(desk, locale, lang):
    alex, lee = desk.admin(locale), desk.member(locale)
    heading = {"en": "What I can do", "fr": "Ce que je sais faire"}[lang]
    before = snapshot(desk.lic)
    [admin_help] = await alex.say("help")
    [member_help] = await lee.say("aide" if lang == "fr" else "help")
    assert heading_of(admin_help) == heading_of(member_help) == heading
    assert facts_of(admin_help) == expected_commands(desk, locale, True)
    assert facts_of(member_help) == expected_commands(desk, locale, False)
    words = {"en": ("audit", "licenses", "help"), "fr": ("journal", "licences", "aide")}[lang]
    assert set(words) <= set(facts_of(admin_help))
    assert words[2] in facts_of(member_help) and not admin_only(desk, locale) & set(facts_of(member_help))
    assert set(facts_of(member_help)) < set(facts_of(admin_help))
    assert facts_of(admin_help)[words[0]] == {"en": "see recent changes", "fr": "voir les changements récents"}[lang]
    license_button = {"en": "License pools", "fr": "Lots de licences"}[lang]
    assert has_action(admin_help, license_button) and not has_action(member_help, lambda t: True)
    assert snapshot(desk.lic) == before
    assert_valid_cards([admin_help, member_help])


@pytest.mark.parametrize("locale, lang", LOCALES)
async def test_an_unknown_command_gets_the_help_of_the_role(desk, locale, lang):
    alex, lee = desk.admin(locale), desk.member(locale)
    sorry = {"en": "Sorry, I don't know “please sing”",
             "fr": "Désolé, je ne connais pas «\u00a0please sing\u00a0»"}[lang]
    [admin_card] = await alex.say("please sing")
    [member_card] = await lee.say("please sing")
    for card, is_admin in ((admin_card, True), (member_card, False)):
        assert sorry in text_of(card)
        assert facts_of(card) == expected_commands(desk, locale, is_admin)


@pytest.mark.parametrize("locale, lang", LOCALES)
async def test_welcome_on_installation_per_role(desk, locale, lang):
    alex, lee = desk.admin(locale), desk.member(locale)
    heading = {"en": "Welcome to License Desk", "fr": "Bienvenue dans License Desk"}[lang]
    admin_line = STRINGS[lang]["welcome.admin"]
    member_line = STRINGS[lang]["welcome.member"]
    before = snapshot(desk.lic)
    [admin_welcome] = await alex.install()  # installationUpdate + conversationUpdate: one welcome
    [member_welcome] = await lee.install()
    assert heading_of(admin_welcome) == heading_of(member_welcome) == heading
    assert admin_line in text_of(admin_welcome) and member_line not in text_of(admin_welcome)
    assert member_line in text_of(member_welcome) and admin_line not in text_of(member_welcome)
    assert facts_of(admin_welcome) == expected_commands(desk, locale, True)
    assert facts_of(member_welcome) == expected_commands(desk, locale, False)
    assert not admin_only(desk, locale) & set(facts_of(member_welcome))
    assert has_action(admin_welcome, {"en": "License pools", "fr": "Lots de licences"}[lang])
    assert not has_action(member_welcome, lambda t: True)
    assert snapshot(desk.lic) == before
    assert_valid_cards([admin_welcome, member_welcome])


@pytest.mark.parametrize("locale, lang", LOCALES)
async def test_a_person_not_in_the_account_is_told_whom_to_ask(desk, locale, lang):
    newcomer = desk.client(NEWCOMER, name="Nova Newcomer", locale=locale)
    heading = {"en": "You are not set up yet", "fr": "Vous n'êtes pas encore inscrit"}[lang]
    before, mark = snapshot(desk.lic), audit_mark(desk.lic)
    ask = {"en": ("You are not a user of your organisation's License Desk account yet. "
                  "Ask Alex Wilber or Megan Bowen to add you."),
           "fr": ("Vous n'êtes pas encore utilisateur du compte License Desk de votre organisation. "
                  "Demandez à Alex Wilber ou à Megan Bowen de vous ajouter.")}[lang]
    [welcome] = await newcomer.install()
    assert heading_of(welcome) == heading
    assert ask in text_of(welcome)
    [event] = audit_since(desk.lic, mark)
    assert (event.outcome, event.action, event.tenant_id, event.actor) == ("refused", "whoami", TENANT, NEWCOMER)
    # a command, the help and an admin command: the same answer for the commands; help is shown
    [card] = await newcomer.say("audit")
    assert heading_of(card) == heading and ask in text_of(card)
    [card] = await newcomer.say("help")
    assert facts_of(card) == expected_commands(desk, locale, False)
    assert snapshot(desk.lic) == before
    assert all(e.outcome == "refused" for e in audit_since(desk.lic, mark))

    # an organisation without an account
    stranger = desk.client("88888888-8888-8888-8888-888888888888", tenant_id=NOWHERE_TENANT, locale=locale)
    [welcome] = await stranger.install()
    assert heading_of(welcome) == heading
    assert {"en": "Your organisation has no License Desk account yet.",
            "fr": "Votre organisation n'a pas encore de compte License Desk."}[lang] in text_of(welcome)
    assert "Alex Wilber" not in text_of(welcome)
    assert snapshot(desk.lic) == before
    assert_valid_cards([welcome])


async def test_a_member_running_an_admin_command_is_told_whom_to_ask(desk):
    lee = desk.member()
    for command in ("licenses", "audit"):
        mark = audit_mark(desk.lic)
        [card] = await lee.say(command)
        assert heading_of(card) == "Administrators only"
        assert ("Only an administrator of your License Desk account can do this. "
                "Ask Alex Wilber or Megan Bowen.") in text_of(card)
        [event] = audit_since(desk.lic, mark)
        assert event.outcome == "refused" and event.detail["code"] == "not_admin"


def _set_admins(lic, names_by_aad: dict[str, str]) -> None:
    """Make exactly these users (by Azure AD id) the account's administrators."""

    def work(s):
        s.execute(update(User).values(role="member"))
        for aad, name in names_by_aad.items():
            s.execute(update(User).where(User.aad_object_id == aad).values(role="admin", name=name,
                                                                            sort_key=sort_key(name)))

    lic.db.write(work)


@pytest.mark.parametrize("admins, whom", [
    ({ALEX: "Alex Wilber"}, "Ask Alex Wilber"),
    ({ALEX: "Zoë Zed", "00000000-0000-0000-0000-0000000000021": "Ann Ant"}, "Ask Ann Ant or Zoë Zed"),
    ({ALEX: "Cy", "00000000-0000-0000-0000-0000000000021": "Bo", "00000000-0000-0000-0000-0000000000023": "Al"},
     "Ask Al, Bo or Cy"),
    ({ALEX: "Dee", "00000000-0000-0000-0000-0000000000021": "Bo", "00000000-0000-0000-0000-0000000000023": "Al",
      "00000000-0000-0000-0000-0000000000024": "Cy"}, "Ask Al, Bo, Cy or another administrator"),
    ({}, None),
])
def test_whom_to_ask_names_up_to_three_administrators(demo, admins, whom):
    _set_admins(demo, admins)
    with pytest.raises(UnknownCaller) as unknown:
        demo.accounts.whoami(Actor(TENANT, NEWCOMER))
    with pytest.raises(NotAdmin) as not_admin:
        demo.pools.list_pools(Actor(TENANT, LEE))
    if whom:
        assert unknown.value.message.endswith(f"{whom} to add you.")
        assert not_admin.value.message.endswith(f"{whom}.")
        assert unknown.value.details["admins"] == not_admin.value.details["admins"]
        assert len(unknown.value.details["admins"]) == min(3, len(admins))
        assert unknown.value.details["more_admins"] == (len(admins) > 3)
    else:  # an account without administrators: the general advice
        assert unknown.value.message.endswith("Ask one of its administrators to add you.")
        assert not_admin.value.message.endswith("Ask one of them.")
    assert demo.accounts.whoami(Actor(TENANT, LEE)).name == "Lee Gu"  # the way in for users is unchanged


FRENCH_WORDS = {"licenses": "licences", "buy": "acheter", "assign": "attribuer", "requests": "demandes",
                "audit": "journal", "mylicense": "ma licence", "help": "aide"}


@pytest.mark.parametrize("locale, lang", LOCALES)
async def test_every_word_the_help_shows_opens_its_command(desk, locale, lang):
    """Typed in chat as the help shows it, each command word (French ones in French) opens the
    command it names: the same card as the command's own name."""
    alex = desk.admin(locale)
    [card] = await alex.say("help")
    shown = list(facts_of(card))
    names = router(desk).command_names(True)
    assert shown == [T(locale)(f"word.{name}") for name in names]
    if lang == "fr":
        assert shown == [FRENCH_WORDS[name] for name in names]  # no English word in the French help
    for name, word in zip(names, shown, strict=True):
        assert router(desk).command_for(word) == name
        [by_word] = await alex.say(word)
        [by_name] = await alex.say(name)
        assert heading_of(by_word) == heading_of(by_name) and "je ne connais pas" not in text_of(by_word), word
        assert "don't know" not in text_of(by_word)



def test_a_help_word_the_router_does_not_understand_is_refused_at_start(lic, monkeypatch):
    from cards.i18n import STRINGS
    from dialogs.router import Router

    monkeypatch.setitem(STRINGS["fr"], "word.audit", "registre")
    with pytest.raises(ValueError, match="registre"):
        Router(lic)
