"""The Graph directory gateway against a fake token endpoint and a fake Graph over real HTTP
(plugged into msal through its ``http_client``): the token is asked for once and reused, the
search request has Graph's shape, and every failure becomes DirectoryUnavailable."""

from __future__ import annotations

import pytest
import requests

from bootstrap import build_directory
from core.config import Settings
from gateways.graph_directory import (
    DirectoryPerson,
    DirectoryThrottled,
    DirectoryUnavailable,
    GraphDirectory,
    retry_after_seconds,
    search_text,
)
from tests.fakes.graph import FakeGraph, ManualClock, fake_person

TENANT = "00000000-0000-0000-0000-0000000000001"
ADA = "7c1e2f3a-0000-4000-8000-00000000ada1"


@pytest.fixture
def fake():
    f = FakeGraph(tenant=TENANT, client_id="app-123", client_secret="s3cret").start()
    f.people += [fake_person("Ada Lovelace", "Ada.Lovelace@contoso.com", oid=ADA),
                 fake_person("Adam Smith", "adam@contoso.com"),
                 fake_person("Grace Hopper", "grace@fabrikam.com"),
                 fake_person("No Mail", "nomail@contoso.com", mail=False),
                 fake_person("Broken", "not-an-address", mail=False)]
    yield f
    f.stop()


def directory(fake: FakeGraph, **kw) -> GraphDirectory:
    kw.setdefault("timeout", 2.0)
    return GraphDirectory(kw.pop("client_id", fake.client_id), kw.pop("secret", fake.client_secret),
                          graph_base=fake.base_url, http_client=fake.session(), **kw)


def test_search_shape_token_reuse_and_results(fake):
    d = directory(fake)
    found = d.search(TENANT, "lovel")
    assert found == [DirectoryPerson(ADA, "Ada Lovelace", "ada.lovelace@contoso.com")]
    assert [p.name for p in d.search(TENANT, "Ad")] == ["Ada Lovelace", "Adam Smith"]
    # no mail: the user principal name stands for the address; no usable address: left out
    assert [(p.name, p.email) for p in d.search(TENANT, "no")] == [("No Mail", "nomail@contoso.com")]
    assert d.search(TENANT, "bro") == []
    assert d.person(TENANT, ADA) == found[0]
    assert d.person(TENANT, "7c1e2f3a-0000-4000-8000-000000000000") is None  # 404: not in the directory

    # one token for all of it, from the tenant's own authority, with the client's credentials
    assert fake.token_hits == 1
    [token_request] = [r for r in fake.requests if r.path.endswith("/token")]
    assert token_request.path == f"/{TENANT}/oauth2/v2.0/token"
    assert token_request.form["grant_type"] == "client_credentials"
    assert token_request.form["scope"] == "https://graph.microsoft.com/.default"
    assert token_request.form["client_id"] == "app-123"
    assert fake.authority_calls >= 2  # discovery + token went to the (routed) real authority host

    searches = [r for r in fake.graph_requests if r.path == "/v1.0/users"]
    assert len(searches) == 4
    first = searches[0]
    assert first.query == {"$search": '"displayName:lovel" OR "mail:lovel"',
                           "$select": "id,displayName,mail,userPrincipalName", "$top": "10"}
    assert first.raw_query.startswith("$search=%22displayName%3Alovel%22%20OR%20%22mail%3Alovel%22&")
    assert first.headers["ConsistencyLevel"] == "eventual"
    assert first.headers["Authorization"].startswith("Bearer fake-token-")
    assert {r.headers["Authorization"] for r in fake.graph_requests} == {first.headers["Authorization"]}


def test_search_text_is_quoted_and_capped(fake):
    assert search_text('  Ada "Lovelace" \\ x\n') == "Ada Lovelace x"
    assert search_text('"') == ""
    assert len(search_text("a" * 500)) == 64
    d = directory(fake)
    assert d.search(TENANT, '"') == [] and d.search(TENANT, "   ") == []
    assert fake.graph_requests == [] and fake.token_hits == 0  # nothing to search: Graph is not asked
    assert [p.name for p in d.search(TENANT, 'ada" OR "mail:g')] == []
    [r] = fake.graph_requests
    assert r.query["$search"] == '"displayName:ada OR mail:g" OR "mail:ada OR mail:g"'  # no clause injected
    assert d.search(TENANT, "ada&$top=999", top=500) == []
    last = fake.graph_requests[-1]
    assert last.query["$top"] == "50" and last.query["$search"].startswith('"displayName:ada&$top=999"')


def test_one_msal_application_per_tenant_and_a_token_per_tenant(fake):
    other = "contoso.onmicrosoft.com"
    fake.tenants.add(other)
    d = directory(fake)
    d.search(TENANT, "ada")
    d.search(TENANT.upper(), "grace")  # the same tenant spelled otherwise: the same application
    assert list(d._apps) == [TENANT] and fake.token_hits == 1
    d.search(other, "ada")
    assert list(d._apps) == [TENANT, other] and fake.token_hits == 2
    for tenant in (TENANT, other, TENANT):
        d.search(tenant, "x")
    assert fake.token_hits == 2
    tokens = [r.headers["Authorization"] for r in fake.graph_requests]
    assert tokens[0] == tokens[1] == tokens[3] == tokens[5] != tokens[2] == tokens[4]
    assert tokens[2].startswith(f"Bearer fake-token-{other}-")


def test_a_token_graph_refuses_is_dropped_and_asked_again_once(fake):
    d = directory(fake)
    d.search(TENANT, "ada")
    fake.fail_graph(401)
    assert [p.name for p in d.search(TENANT, "grace")] == ["Grace Hopper"]
    assert fake.token_hits == 2
    first, refused, retried = (r.headers["Authorization"] for r in fake.graph_requests)
    assert first == refused != retried
    fake.fail_graph(401, count=2)
    with pytest.raises(DirectoryUnavailable, match="401"):
        d.search(TENANT, "grace")
    assert fake.token_hits == 3 and len(fake.graph_requests) == 5


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503])
def test_graph_errors_become_directory_unavailable(fake, status):
    clock = ManualClock()
    d = directory(fake, clock=clock)
    fake.fail_graph(status, count=2 if status == 401 else 1)  # a 401 is retried once with a new token
    with pytest.raises(DirectoryUnavailable, match=str(status)):
        d.search(TENANT, "ada")
    if status == 429:  # (the injected 429 says Retry-After: 2) not asked again before that
        with pytest.raises(DirectoryThrottled):
            d.search(TENANT, "ada")
        clock.advance(2)
    assert d.search(TENANT, "ada")  # the next search works again


def test_a_throttled_tenant_is_not_asked_again_before_its_retry_after():
    """Graph: past the limit, 429 + Retry-After, and every request sent meanwhile is throttled
    too. Five searches within 2 s, for a limit of 3 per 2 s: the fourth is throttled, the fifth
    is not sent; the other tenant is not affected; after the Retry-After, Graph is asked again."""
    clock = ManualClock()
    other = "contoso.onmicrosoft.com"
    fake = FakeGraph(tenant=(TENANT, other), client_id="app-123", client_secret="s3cret", clock=clock).start()
    try:
        fake.people.append(fake_person("Ada Lovelace", "ada@contoso.com", oid=ADA))
        fake.throttle(limit=3, window=2.0)
        d = directory(fake, clock=clock)
        for _ in range(3):
            assert d.search(TENANT, "ada")
            clock.advance(0.25)
        with pytest.raises(DirectoryThrottled) as first:
            d.search(TENANT, "ada")  # the 4th in 2 s: Graph throttles
        assert first.value.retry_after == 2  # Graph's Retry-After: room once the 2nd request leaves the window
        clock.advance(0.5)
        with pytest.raises(DirectoryThrottled) as second:
            d.search(TENANT, "ada")  # the 5th: not sent, with what is left of the wait
        assert second.value.retry_after == 2 and isinstance(second.value, DirectoryUnavailable)
        with pytest.raises(DirectoryThrottled):
            d.person(TENANT, ADA)  # lookups wait too
        assert len(fake.graph_requests) == 4 and len(fake.throttled) == 1
        assert d.search(other, "ada")  # (another tenant's limit is its own)
        clock.advance(1.5)  # the Retry-After has passed
        assert d.search(TENANT, "ada") and len(fake.graph_requests) == 6
    finally:
        fake.stop()


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds(None) == retry_after_seconds("soon") == 10.0  # none usable: a default
    assert retry_after_seconds("-3") == 0.0 and retry_after_seconds("1e9") == 3600.0


def test_timeout_wrong_secret_unknown_tenant_and_unreachable(fake):
    d = directory(fake, timeout=0.3)
    fake.delay_graph(1.5)
    with pytest.raises(DirectoryUnavailable, match="unreachable"):
        d.search(TENANT, "ada")
    with pytest.raises(DirectoryUnavailable, match="invalid_client"):
        directory(fake, secret="wrong").search(TENANT, "ada")
    with pytest.raises(DirectoryUnavailable, match="no token"):
        d.search("11111111-1111-1111-1111-111111111111", "ada")
    with pytest.raises(DirectoryUnavailable, match="tenant id"):
        d.search("../../evil", "ada")
    with pytest.raises(DirectoryUnavailable):
        GraphDirectory("a", "b", graph_base=fake.base_url, http_client=requests.Session(),
                       authority_host="https://127.0.0.1:9").search(TENANT, "ada")
    fake.stop()
    with pytest.raises(DirectoryUnavailable, match="unreachable"):
        d.search(TENANT, "grace")  # token cached, Graph gone


def test_the_fake_refuses_requests_without_the_graph_headers(fake):
    d = directory(fake)
    d.search(TENANT, "ada")
    token = fake.graph_requests[0].headers["Authorization"]
    url = f"{fake.base_url}/v1.0/users"
    params = {"$search": '"displayName:ada" OR "mail:ada"'}
    assert requests.get(url, params=params, headers={"Authorization": token}, timeout=5).status_code == 400
    assert requests.get(url, params=params, headers={"ConsistencyLevel": "eventual"}, timeout=5).status_code == 401
    assert requests.get(url, params=params, timeout=5,
                        headers={"ConsistencyLevel": "eventual", "Authorization": token}).status_code == 200
    with pytest.raises(requests.ConnectionError):
        fake.session().get("https://graph.microsoft.com/v1.0/users", timeout=5)  # the real cloud is never reached


def test_wiring_from_settings():
    assert build_directory(Settings()) is None
    s = Settings(GRAPH_ENABLED="true", MicrosoftAppId="app-1", MicrosoftAppPassword="pw",
                 GRAPH_API_BASE="https://graph.example/", GRAPH_AUTHORITY_HOST="https://login.example/")
    d = build_directory(s)
    assert isinstance(d, GraphDirectory)
    assert (d.client_id, d.graph_base, d.authority_host) == ("app-1", "https://graph.example", "https://login.example")
    assert Settings().graph_authority_host == "https://login.microsoftonline.com"
    assert Settings().graph_api_base == "https://graph.microsoft.com"
    with pytest.raises(SystemExit, match="MicrosoftAppId"):
        build_directory(Settings(GRAPH_ENABLED="1"))
