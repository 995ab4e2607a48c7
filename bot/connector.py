"""Outbound calls to the Bot Connector, made cheap without forking the SDK.

Stock botbuilder-python (4.17) builds, on *every* turn, a new ``ConnectorClient`` (an msrest
``Configuration`` whose retry policy rebuilds a ~1,000-entry status list, ~5 ms), new
credentials (so a new msal app: the bot's token is fetched again, its cache is lost) and a
``UserTokenClient`` (another msrest configuration) that this bot never uses; each reply then
goes through ``requests`` in an executor, with msrest retrying 429s and 5xx on its own.

:class:`LicenseDeskAuthentication` is the ``ConfigurationBotFrameworkAuthentication`` the
adapter gets instead. It only wraps what the SDK hands out:

* the connector factories (of ``authenticate_request`` and ``create_connector_factory``) keep
  one ``ConnectorClient`` per (app id, service URL, audience) for the life of the process
  (a bounded LRU), and one set of credentials per (app id, audience), so msal's token cache
  is reused across turns;
* those clients send through :class:`SharedSession`: ONE pooled ``aiohttp.ClientSession``
  (created lazily in the running loop, closed on app cleanup). The msrest pipeline around it
  is kept (user agent, JSON (de)serialisation, ``ErrorResponseException`` on 4xx/5xx), and the
  bearer token comes from the cached credentials (msal is synchronous: it runs in a thread,
  at most once every few minutes). There is no retry inside: a 429 with ``Retry-After``
  reaches the caller (the outbox retries with backoff), with ``exc.response.status_code``,
  ``.headers`` and ``.text`` as ``requests`` had them. The session does not trust the
  environment on each request (aiohttp would look up the proxy and ``.netrc`` in a thread,
  every request): the proxy settings (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``, a
  proxy's ``.netrc`` credentials) are read once, and a configured proxy is passed explicitly;
* ``create_user_token_client`` returns a client built on first use only (OAuth sign-in is
  not used by this bot, so normally never).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.helpers import BasicAuth, proxies_from_env
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)
from msrest.exceptions import ClientRequestError
from msrest.pipeline import AsyncHTTPPolicy, AsyncHTTPSender, AsyncPipeline, Request, Response
from msrest.pipeline.universal import RawDeserializer
from msrest.universal_http import AsyncClientResponse
from multidict import CIMultiDict
from yarl import URL

from bot.serialization import FastSerializer

log = logging.getLogger(__name__)

MAX_CLIENTS = 256  # (app id, service URL, audience) triples kept; Teams uses a handful of service URLs
TOKEN_REUSE_SECONDS = 240.0  # msal hands out tokens valid for 5 min at least; ask it again well before


# ============================================================================ the HTTP session


class SharedSession:
    """One pooled ``aiohttp.ClientSession`` for every outbound Bot Connector call of the process.

    Created on first use in the running loop (a session belongs to one loop: a use from
    another loop gets a new one), closed by :meth:`close` (on app cleanup).

    ``proxies``: scheme -> ``aiohttp.helpers.ProxyInfo``; by default what the environment says
    when the session object is made (``proxies_from_env``: ``HTTP(S)_PROXY``, credentials from
    the URL or ``.netrc``), and ``NO_PROXY`` then too. The session itself does not read the
    environment (``trust_env=False``): :meth:`proxy_for` gives each request its proxy."""

    def __init__(self, *, limit: int = 100, timeout: float = 100.0, proxies: dict | None = None,
                 no_proxy: str | None = None) -> None:
        self.limit = limit
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=15)
        self.proxies = proxies_from_env() if proxies is None else dict(proxies)
        if no_proxy is None:
            no_proxy = urllib.request.getproxies_environment().get("no", "")
        self._no_proxy = {"no": no_proxy} if no_proxy else {}
        self._proxy_of: dict[tuple[str, str | None], tuple[URL | None, BasicAuth | None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.created = 0  # how many sessions were opened (tests)

    def proxy_for(self, url: str) -> tuple[URL | None, BasicAuth | None]:
        """(proxy, proxy credentials) for a request to ``url``: (None, None) without a proxy, or
        for a host that ``NO_PROXY`` lists; decided once per (scheme, host)."""
        if not self.proxies:
            return None, None
        u = URL(url)
        key = (u.scheme, u.host)
        found = self._proxy_of.get(key)
        if found is None:
            info = self.proxies.get(u.scheme)
            if info is None or (u.host and self._no_proxy
                                and urllib.request.proxy_bypass_environment(u.host, self._no_proxy)):
                found = (None, None)
            else:
                found = (info.proxy, info.proxy_auth)
            self._proxy_of[key] = found
        return found

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self.limit, ttl_dns_cache=300, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout, trust_env=False,
                                                  auto_decompress=True, raise_for_status=False)
            self._loop = loop
            self.created += 1
        return self._session

    @property
    def closed(self) -> bool:
        return self._session is None or self._session.closed

    async def close(self) -> None:
        session, self._session, self._loop = self._session, None, None
        if session is not None and not session.closed:
            await session.close()


class ConnectorResponse:
    """The raw HTTP answer, shaped like ``requests.Response`` (what ``ErrorResponseException
    .response`` was with stock msrest, and what :func:`bot.notifier.classify` reads)."""

    def __init__(self, status: int, reason: str | None, headers: CIMultiDict, content: bytes, url: str) -> None:
        self.status_code = self.status = status
        self.reason = reason
        self.headers = headers
        self.content = content
        self.url = url

    @property
    def text(self) -> str:
        return self.content.decode("utf-8-sig", "replace")

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json(self) -> Any:
        import json

        return json.loads(self.text)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise ClientRequestError(f"{self.status_code} {self.reason or ''} for {self.url}".strip())

    def __repr__(self) -> str:
        return f"<ConnectorResponse [{self.status_code}]>"


class _HttpResponse(AsyncClientResponse):
    """msrest's universal HTTP response over a body already read."""

    def __init__(self, request, raw: ConnectorResponse) -> None:
        super().__init__(request, raw)
        self.status_code = raw.status_code
        self.headers = raw.headers
        self.reason = raw.reason

    def body(self) -> bytes:
        return self.internal_response.content

    def raise_for_status(self) -> None:
        self.internal_response.raise_for_status()

    def stream_download(self, chunk_size=None, callback=None):  # pragma: no cover - not used by the connector
        raise NotImplementedError("the body is read in full")


class SessionSender(AsyncHTTPSender):
    """The end of the msrest pipeline: one request on the shared session, read in full, no retry."""

    def __init__(self, session: SharedSession) -> None:
        self.session = session

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_details):
        return None

    def build_context(self) -> Any:
        return None

    async def send(self, request: Request, **config: Any) -> Response:
        http = request.http_request
        if http.files:
            raise ClientRequestError("multipart uploads are not supported by this sender")
        data = http.data
        if isinstance(data, str):
            data = data.encode("utf-8")
        proxy, proxy_auth = self.session.proxy_for(http.url)
        try:
            async with self.session.get().request(http.method, http.url, data=data, headers=dict(http.headers),
                                                  allow_redirects=False, proxy=proxy, proxy_auth=proxy_auth) as r:
                raw = ConnectorResponse(r.status, r.reason, CIMultiDict(r.headers), await r.read(), str(r.url))
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ClientRequestError(f"Error occurred in request: {type(e).__name__}: {e}") from e
        return Response(request, _HttpResponse(http, raw))


# ============================================================================ the bot's token


class TokenSource:
    """The bearer token of one set of credentials: msal (synchronous) is asked in a thread, once,
    then again only after :data:`TOKEN_REUSE_SECONDS` (its own cache refreshes tokens that have
    less than 5 minutes left) or after a 401. Anonymous (local mode) credentials give no token."""

    def __init__(self, credentials, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.credentials = credentials
        self._clock = clock
        self._token: str | None = None
        self._at = 0.0
        self._lock: asyncio.Lock | None = None
        self.fetches = 0

    @property
    def anonymous(self) -> bool:
        app_id = getattr(self.credentials, "microsoft_app_id", None)
        if hasattr(self.credentials, "get_access_token"):
            return not app_id or app_id == AuthenticationConstants.ANONYMOUS_SKILL_APP_ID
        return False

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() - self._at < TOKEN_REUSE_SECONDS

    def _fetch(self) -> str | None:
        if hasattr(self.credentials, "get_access_token"):
            return self.credentials.get_access_token()
        session = self.credentials.signed_session()  # an msrest Authentication of another kind
        header = session.headers.get("Authorization", "")
        return header.split(" ", 1)[1] if " " in header else None

    async def token(self) -> str | None:
        if self.anonymous:
            return None
        if self._fresh():
            return self._token
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one msal call at a time, however many turns wait
            if not self._fresh():
                self.fetches += 1
                self._token = await asyncio.to_thread(self._fetch)
                self._at = self._clock()
        return self._token

    def invalidate(self) -> None:
        self._token = None


class BearerPolicy(AsyncHTTPPolicy):
    def __init__(self, tokens: TokenSource) -> None:
        super().__init__()
        self.tokens = tokens

    async def send(self, request: Request, **kwargs: Any) -> Response:
        token = await self.tokens.token()
        headers = request.http_request.headers
        if token:
            headers["Authorization"] = f"Bearer {token}"
        else:
            headers.pop("Authorization", None)
        response = await self.next.send(request, **kwargs)
        if token and response.http_response.status_code == 401:
            self.tokens.invalidate()  # the next call asks msal again (no retry here)
        return response


# ============================================================================ factories


def _app_id(claims: ClaimsIdentity | None) -> str:
    if claims is None:
        return ""
    return (claims.get_claim_value(AuthenticationConstants.AUDIENCE_CLAIM)
            or claims.get_claim_value(AuthenticationConstants.APP_ID_CLAIM) or "")


class ConnectorCache:
    """The process's connector clients and credentials, and the shared session they send with."""

    def __init__(self, session: SharedSession | None = None, *, max_clients: int = MAX_CLIENTS) -> None:
        self.session = session or SharedSession()
        self.max_clients = max_clients
        self._clients: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._tokens: dict[tuple[str, str], TokenSource] = {}
        self._lock: asyncio.Lock | None = None
        self.built = 0  # connector clients built (tests)

    def __len__(self) -> int:
        return len(self._clients)

    def tokens(self, app_id: str, audience: str) -> TokenSource | None:
        return self._tokens.get((app_id, audience))

    async def client(self, app_id: str, service_url: str, audience: str,
                     build: Callable[[], Awaitable[Any]]):
        key = (app_id, service_url, audience)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # misses are rare: build each client once, even under concurrency
            client = self._clients.get(key)
            if client is None:
                client = self._adopt(await build(), app_id, audience)
                self.built += 1
                self._clients[key] = client
                while len(self._clients) > self.max_clients:
                    self._clients.popitem(last=False)
        return client

    def _adopt(self, client, app_id: str, audience: str):
        """Give a freshly built ConnectorClient the shared credentials and the shared session."""
        tokens = self._tokens.get((app_id, audience))
        if tokens is None:
            tokens = self._tokens[(app_id, audience)] = TokenSource(client.config.credentials)
        client.config.credentials = tokens.credentials
        old = client.config.pipeline
        pipeline = AsyncPipeline([client.config.user_agent_policy, BearerPolicy(tokens), RawDeserializer(),
                                  client.config.http_logger_policy], SessionSender(self.session))
        client.config.pipeline = client._client.config.pipeline = pipeline
        fast = FastSerializer(client._serialize.dependencies)
        client._serialize = fast
        for group in (client.conversations, client.attachments):
            group._serialize = fast
        driver = getattr(getattr(old, "_sender", None), "driver", None)
        requests_session = getattr(driver, "session", None)
        if requests_session is not None:
            requests_session.close()  # the requests session msrest made for the pipeline we replaced
        return client

    async def close(self) -> None:
        self._clients.clear()
        await self.session.close()


class CachingConnectorFactory(ConnectorFactory):
    """Wraps the SDK's connector factory: the client of a service URL comes from the cache."""

    def __init__(self, inner: ConnectorFactory, cache: ConnectorCache, app_id: str, default_audience: str) -> None:
        self.inner = inner
        self.cache = cache
        self.app_id = app_id
        self.default_audience = default_audience

    async def create(self, service_url: str, audience: str = None):
        audience = audience or self.default_audience or ""
        return await self.cache.client(self.app_id, service_url, audience,
                                       lambda: self.inner.create(service_url, audience or None))


class LazyUserTokenClient(UserTokenClient):
    """A UserTokenClient built on first use (this bot does not use OAuth sign-in)."""

    def __init__(self, build: Callable[[], Awaitable[UserTokenClient]]) -> None:
        self._build = build
        self._client: UserTokenClient | None = None

    async def _inner(self) -> UserTokenClient:
        if self._client is None:
            self._client = await self._build()
        return self._client

    @property
    def built(self) -> bool:
        return self._client is not None

    async def get_user_token(self, user_id, connection_name, channel_id, magic_code):
        return await (await self._inner()).get_user_token(user_id, connection_name, channel_id, magic_code)

    async def get_sign_in_resource(self, connection_name, activity, final_redirect):
        return await (await self._inner()).get_sign_in_resource(connection_name, activity, final_redirect)

    async def sign_out_user(self, user_id, connection_name, channel_id):
        return await (await self._inner()).sign_out_user(user_id, connection_name, channel_id)

    async def get_token_status(self, user_id, channel_id, include_filter):
        return await (await self._inner()).get_token_status(user_id, channel_id, include_filter)

    async def get_aad_tokens(self, user_id, connection_name, resource_urls, channel_id):
        return await (await self._inner()).get_aad_tokens(user_id, connection_name, resource_urls, channel_id)

    async def exchange_token(self, user_id, connection_name, channel_id, exchange_request):
        return await (await self._inner()).exchange_token(user_id, connection_name, channel_id, exchange_request)


# ============================================================================ the authentication


class LicenseDeskAuthentication(ConfigurationBotFrameworkAuthentication):
    """``ConfigurationBotFrameworkAuthentication`` whose connector clients are cached and send
    through one shared aiohttp session. Close it on app cleanup (:meth:`on_cleanup`)."""

    def __init__(self, configuration: Any, *, cache: ConnectorCache | None = None, **kw) -> None:
        super().__init__(configuration, **kw)
        self.connectors = cache or ConnectorCache()

    @property
    def session(self) -> SharedSession:
        return self.connectors.session

    def _wrap(self, factory: ConnectorFactory | None, claims: ClaimsIdentity | None) -> ConnectorFactory | None:
        if factory is None:
            return None
        return CachingConnectorFactory(factory, self.connectors, _app_id(claims), self.get_originating_audience())

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        result = await super().authenticate_request(activity, auth_header)
        result.connector_factory = self._wrap(result.connector_factory, result.claims_identity)
        return result

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        return self._wrap(super().create_connector_factory(claims_identity), claims_identity)

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        parent = super()
        return LazyUserTokenClient(lambda: parent.create_user_token_client(claims_identity))

    async def close(self) -> None:
        await self.connectors.close()

    async def on_cleanup(self, _app) -> None:
        """An aiohttp ``on_cleanup`` handler."""
        await self.close()
