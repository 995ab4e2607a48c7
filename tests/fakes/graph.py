"""A fake Microsoft identity platform token endpoint and a fake Microsoft Graph ``/v1.0/users``,
over real HTTP on 127.0.0.1 (an aiohttp server in a background thread with its own loop, so
synchronous callers such as msal and requests can reach it from any test)::

    fake = FakeGraph(tenant=TENANT, client_id="app", client_secret="secret").start()
    fake.people.append(fake_person("Ada Lovelace", "ada@contoso.com"))
    directory = GraphDirectory("app", "secret", graph_base=fake.base_url, http_client=fake.session())
    ...
    fake.stop()

msal only accepts an ``https://`` authority, so the authority stays the real one
(``https://login.microsoftonline.com/<tenant>``) and :meth:`FakeGraph.session` gives a
``requests.Session`` (msal's ``http_client``) that sends every request for that host to this
server instead, and refuses any other host: nothing reaches the real cloud.

What it speaks and checks (shapes from the Microsoft identity platform and Graph v1.0 docs):

* ``GET /{tenant}/v2.0/.well-known/openid-configuration``: OpenID discovery (endpoints on
  the authority host); ``GET /common/discovery/instance``: instance discovery, if asked.
* ``POST /{tenant}/oauth2/v2.0/token``: form ``grant_type=client_credentials``, ``client_id``,
  ``client_secret``, ``scope=https://graph.microsoft.com/.default`` -> ``{"token_type":
  "Bearer", "expires_in": 3599, "access_token": ...}``; a wrong client -> 401
  ``invalid_client``; an unknown tenant -> 400 ``invalid_request``.
* ``GET /v1.0/users?$search="displayName:<q>" OR "mail:<q>"&$select=...&$top=N``: needs
  ``Authorization: Bearer <a token it issued>`` (401 ``InvalidAuthenticationToken``) and
  ``ConsistencyLevel: eventual`` (400 ``Request_UnsupportedQuery``); a person matches when a
  word of their display name, or their address, starts with ``q`` (case-insensitive). The
  answer is ``{"@odata.context": ..., "value": [{"id", "displayName", "mail",
  "userPrincipalName"}]}`` with only the ``$select``-ed properties.
* ``GET /v1.0/users/{id}?$select=...``: one person, or 404 ``Request_ResourceNotFound``.

* Throttling (Graph docs, "Microsoft Graph throttling guidance"; the directory's limits are
  per app and tenant): with :meth:`FakeGraph.throttle` (``limit`` requests per ``window``
  seconds, per tenant), a request beyond the limit is answered 429 ``TooManyRequests`` with a
  ``Retry-After`` (whole seconds until the window has room again). Every request counts,
  throttled ones included ("all requests accrue against your usage limits"): a client that
  keeps sending stays throttled.

State for tests: ``requests`` (each with method, path, query, headers, form), ``token_hits``,
``graph_requests``, ``throttled`` (the 429s answered). Faults: ``fail_graph(status, count)``,
``delay_graph(seconds, count)``; ``throttle(limit, window)``; ``clock`` (a
:class:`ManualClock` to move time without sleeping).
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import requests
from aiohttp import web
from requests.adapters import HTTPAdapter

from tests.fakes.server import ThreadedServer

AUTHORITY_HOST = "login.microsoftonline.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_CLAUSE = re.compile(r'^"displayName:([^"]*)" OR "mail:([^"]*)"$')
_WORD = re.compile(r"\w+")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    raw_query: str = ""  # as sent, percent-encoded


def fake_person(name: str, email: str, *, oid: str | None = None, upn: str | None = None,
                mail: bool = True) -> dict:
    """A Graph user resource."""
    return {"id": oid or str(uuid.uuid4()), "displayName": name, "mail": email if mail else None,
            "userPrincipalName": upn or email}


class ManualClock:
    """Monotonic seconds that only move when told (share one between the fake and the client)."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class _Route(HTTPAdapter):
    """Sends requests for the authority host (https) to the fake server; refuses other hosts."""

    def __init__(self, fake: FakeGraph):
        super().__init__()
        self.fake = fake

    def send(self, request, **kw):
        parts = urlsplit(request.url)
        fake = urlsplit(self.fake.base_url)
        if parts.hostname == AUTHORITY_HOST and parts.scheme == "https":
            request.url = urlunsplit((fake.scheme, fake.netloc, parts.path, parts.query, ""))
            self.fake.authority_calls += 1
        elif (parts.scheme, parts.netloc) != (fake.scheme, fake.netloc):
            raise requests.ConnectionError(f"the fake network reaches only the fake Graph, not {parts.netloc}")
        return super().send(request, **kw)


class FakeGraph(ThreadedServer):
    thread_name = "fake-graph"
    what = "fake Graph"

    def __init__(self, *, tenant: str | tuple[str, ...], client_id: str = "fake-app-id",
                 client_secret: str = "fake-app-secret", clock=time.monotonic):  # noqa: S107
        self.clock = clock
        self.limit: tuple[int, float] | None = None  # (requests, seconds) per tenant, once throttle() is called
        self._seen: dict[str, deque[float]] = {}  # tenant -> times of its Graph requests in the window
        self.throttled: list[Recorded] = []
        self.tenants = {t.lower() for t in ((tenant,) if isinstance(tenant, str) else tenant)}
        self.client_id = client_id
        self.client_secret = client_secret
        self.people: list[dict] = []
        self.requests: list[Recorded] = []
        self.tokens: set[str] = set()
        self.authority_calls = 0
        self.base_url = ""
        self._faults: deque[tuple[int | None, float]] = deque()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle (start, stop: ThreadedServer)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/common/discovery/instance", self._instance_discovery)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/v1.0/users", self._users)
        app.router.add_get("/v1.0/users/{id}", self._user)
        return app

    def session(self) -> requests.Session:
        """A requests.Session for msal's ``http_client`` (and the Graph calls) that reaches only
        this fake."""
        s = requests.Session()
        route = _Route(self)
        s.mount("https://", route)
        s.mount("http://", route)
        return s

    # ------------------------------------------------------------------ test controls

    def fail_graph(self, status: int = 503, count: int = 1) -> None:
        with self._lock:
            self._faults.extend((status, 0.0) for _ in range(count))

    def delay_graph(self, seconds: float, count: int = 1) -> None:
        with self._lock:
            self._faults.extend((None, seconds) for _ in range(count))

    def throttle(self, limit: int, window: float) -> None:
        """Throttle each tenant past ``limit`` Graph requests in any ``window`` seconds."""
        with self._lock:
            self.limit = (limit, window)

    def _over_limit(self, tenant: str) -> int | None:
        """Count this request for the tenant; the Retry-After (seconds) when it is over the limit."""
        if self.limit is None:
            return None
        limit, window = self.limit
        now = self.clock()
        with self._lock:
            times = self._seen.setdefault(tenant, deque())
            while times and times[0] <= now - window:
                times.popleft()
            times.append(now)  # throttled requests count too
            if len(times) <= limit:
                return None
            # room again once the limit-th most recent request has left the window
            return max(1, math.ceil(times[-limit] + window - now))

    @property
    def token_hits(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST" and r.path.endswith("/oauth2/v2.0/token"))

    @property
    def graph_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/v1.0/")]

    # ------------------------------------------------------------------ identity platform

    def _record(self, request: web.Request, form: dict | None = None) -> None:
        self.requests.append(Recorded(request.method, request.path, dict(parse_qsl(request.query_string)),
                                      dict(request.headers), form or {}, request.raw_path.partition("?")[2]))

    def _authority(self, tenant: str) -> str:
        return f"https://{AUTHORITY_HOST}/{tenant}"

    async def _instance_discovery(self, request: web.Request) -> web.Response:
        self._record(request)
        return web.json_response({
            "tenant_discovery_endpoint": f"https://{AUTHORITY_HOST}/{{tenant}}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": AUTHORITY_HOST, "preferred_cache": AUTHORITY_HOST,
                          "aliases": [AUTHORITY_HOST]}]})

    async def _openid(self, request: web.Request) -> web.Response:
        self._record(request)
        tenant = request.match_info["tenant"].lower()
        if tenant not in self.tenants:
            return web.json_response({"error": "invalid_tenant",
                                      "error_description": f"AADSTS90002: Tenant '{tenant}' not found."}, status=400)
        base = self._authority(tenant)
        return web.json_response({
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "issuer": f"{base}/v2.0",
            "jwks_uri": f"https://{AUTHORITY_HOST}/{tenant}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "tenant_region_scope": "EU",
        })

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self._record(request, {k: str(v) for k, v in form.items()})
        if request.match_info["tenant"].lower() not in self.tenants:
            return web.json_response({"error": "invalid_request", "error_description": "AADSTS90002: Tenant not "
                                      "found."}, status=400)
        if form.get("grant_type") != "client_credentials" or form.get("scope") != GRAPH_SCOPE:
            return web.json_response({"error": "invalid_scope" if form.get("scope") != GRAPH_SCOPE
                                      else "unsupported_grant_type", "error_description": "AADSTS70011"}, status=400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client "
                                      "secret provided."}, status=401)
        token = f"fake-token-{request.match_info['tenant'].lower()}-{uuid.uuid4().hex}"
        self.tokens.add(token)
        return web.json_response({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                  "access_token": token})

    # ------------------------------------------------------------------ Graph

    @staticmethod
    def _graph_error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"error": {"code": code, "message": message,
                                            "innerError": {"request-id": str(uuid.uuid4())}}}, status=status)

    async def _graph_guard(self, request: web.Request) -> web.Response | None:
        self._record(request)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            status, delay = fault
            if delay:
                await asyncio.sleep(delay)
            if status:
                headers = {"Retry-After": "2"} if status == 429 else {}
                resp = self._graph_error(status, "TooManyRequests" if status == 429 else "ServiceUnavailable",
                                         "Injected fault.")
                resp.headers.update(headers)
                return resp
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return self._graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        tenant = auth[7:].removeprefix("fake-token-").rpartition("-")[0]  # (the tenant the token was issued for)
        retry_after = self._over_limit(tenant)
        if retry_after is not None:
            self.throttled.append(self.requests[-1])
            resp = self._graph_error(429, "TooManyRequests", "Too many requests. Please try again later.")
            resp.headers["Retry-After"] = str(retry_after)
            return resp
        return None

    def _select(self, person: dict, select: str | None) -> dict:
        props = (select or "id,displayName,mail,userPrincipalName").split(",")
        return {p: person.get(p) for p in props}

    async def _users(self, request: web.Request) -> web.Response:
        refused = await self._graph_guard(request)
        if refused:
            return refused
        q = dict(parse_qsl(request.query_string))
        search = q.get("$search")
        if search is None:
            return web.json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
                                      "value": [self._select(p, q.get("$select")) for p in self.people]})
        if request.headers.get("ConsistencyLevel") != "eventual":
            return self._graph_error(400, "Request_UnsupportedQuery",
                                     "Request with $search query parameter only works through MSGraph with a "
                                     "special request header: 'ConsistencyLevel: eventual'")
        m = _CLAUSE.match(search)
        if not m or m.group(1) != m.group(2) or not m.group(1).strip():
            return self._graph_error(400, "Request_BadRequest", f"Invalid search clause: {search}")
        term = m.group(1).lower()
        try:
            top = int(q.get("$top", "100"))
        except ValueError:
            return self._graph_error(400, "Request_BadRequest", "Invalid $top.")
        found = []
        for p in self.people:
            words = _WORD.findall((p.get("displayName") or "").lower())
            mail = (p.get("mail") or "").lower()
            if any(w.startswith(term) for w in words) or mail.startswith(term) or term in words:
                found.append(self._select(p, q.get("$select")))
        return web.json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users"
                                  f"({q.get('$select', '')})", "value": found[:top]})

    async def _user(self, request: web.Request) -> web.Response:
        refused = await self._graph_guard(request)
        if refused:
            return refused
        oid = request.match_info["id"].lower()
        q = dict(parse_qsl(request.query_string))
        for p in self.people:
            if p["id"].lower() == oid:
                body = self._select(p, q.get("$select"))
                body["@odata.context"] = "https://graph.microsoft.com/v1.0/$metadata#users/$entity"
                return web.json_response(body)
        return self._graph_error(404, "Request_ResourceNotFound",
                                 f"Resource '{oid}' does not exist or one of its queried reference-property "
                                 "objects are not present.")
