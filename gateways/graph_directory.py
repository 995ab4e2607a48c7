"""The tenant's directory through Microsoft Graph, for the assign picker.

An app-only token comes from msal (``ConfidentialClientApplication``, client credentials,
with the bot's own ``MicrosoftAppId`` / ``MicrosoftAppPassword``); one msal application per
tenant is kept, and all share one token cache, so a token is asked for once and reused until
it nears its expiry. Searches are ``GET /v1.0/users?$search="displayName:<q>" OR
"mail:<q>"`` with ``ConsistencyLevel: eventual`` (required by Graph for ``$search`` on
directory objects). Permission needed: ``User.Read.All`` (application).

Synchronous (requests), like the card flows that call it from a worker thread. Any failure
(network, timeout, token refused, 401/403/429/5xx, a malformed answer) raises
:class:`DirectoryUnavailable` with a short reason; secrets and raw payloads are never logged.

Throttling (Graph docs, "Microsoft Graph throttling guidance"): past a limit per app and
tenant, Graph answers 429 with a ``Retry-After``; the client must wait that long, since every
request sent meanwhile is throttled too and still counts against the limit. So a 429 closes
the tenant's directory here until its Retry-After has passed: calls for that tenant raise
:class:`DirectoryThrottled` (with the seconds left) without reaching Graph.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import msal
import requests

log = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_BASE = "https://graph.microsoft.com"
SELECT = "id,displayName,mail,userPrincipalName"
MAX_TOP = 50
MAX_QUERY = 64
DEFAULT_RETRY_AFTER = 10.0  # seconds, when a 429 comes without a usable Retry-After
MAX_RETRY_AFTER = 3600.0
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")  # a GUID or a verified domain name
_OBJECT_ID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
# Characters that would end or escape the quoted search clause, or that carry no meaning in a
# name or an address: dropped (the directory's search splits words on them anyway).
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')


class DirectoryUnavailable(Exception):
    """The directory could not be searched (the picker falls back to the account's users)."""


class DirectoryThrottled(DirectoryUnavailable):
    """Graph throttles this tenant: nothing is asked for it for ``retry_after`` more seconds."""

    def __init__(self, retry_after: float):
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"Graph throttles this tenant (429): retry after {self.retry_after} s")


def retry_after_seconds(value, now: float | None = None) -> float:
    """The wait a ``Retry-After`` header asks for (delay-seconds or an HTTP date), bounded."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        try:
            seconds = parsedate_to_datetime(str(value)).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):
            seconds = DEFAULT_RETRY_AFTER
    if math.isnan(seconds):
        seconds = DEFAULT_RETRY_AFTER
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class DirectoryPerson:
    aad_object_id: str
    name: str
    email: str


def search_text(query: str) -> str:
    """The search text as it goes between the clause's double quotes."""
    return " ".join(_UNSAFE.sub(" ", query or "").split())[:MAX_QUERY].strip()


def is_object_id(value: str) -> bool:
    return isinstance(value, str) and bool(_OBJECT_ID.match(value))


def _session(timeout: float) -> requests.Session:
    s = requests.Session()
    s.request = functools.partial(s.request, timeout=timeout)  # requests has no session-wide timeout
    return s


class GraphDirectory:
    def __init__(self, client_id: str, client_secret: str, *, authority_host: str = DEFAULT_AUTHORITY_HOST,
                 graph_base: str = DEFAULT_GRAPH_BASE, http_client: requests.Session | None = None,
                 timeout: float = 5.0, token_cache: msal.TokenCache | None = None, clock=time.monotonic):
        if not client_id or not client_secret:
            raise ValueError("the Graph directory needs the bot's MicrosoftAppId and MicrosoftAppPassword")
        self.client_id = client_id
        self._secret = client_secret
        self.authority_host = authority_host.rstrip("/")
        self.graph_base = graph_base.rstrip("/")
        self.timeout = timeout
        self.http = http_client or _session(timeout)
        self.token_cache = token_cache or msal.TokenCache()
        self._apps: dict[str, msal.ConfidentialClientApplication] = {}
        self._lock = threading.Lock()
        self.clock = clock
        self._throttled_until: dict[str, float] = {}  # tenant -> clock time its Retry-After ends

    @classmethod
    def from_settings(cls, settings, **kw) -> GraphDirectory:
        return cls(settings.app_id, settings.app_password.get_secret_value(),
                   authority_host=settings.graph_authority_host, graph_base=settings.graph_api_base, **kw)

    # ------------------------------------------------------------------ token

    def _app(self, tenant_id: str) -> msal.ConfidentialClientApplication:
        with self._lock:
            app = self._apps.get(tenant_id)
            if app is None:
                app = msal.ConfidentialClientApplication(
                    self.client_id, client_credential=self._secret,
                    authority=f"{self.authority_host}/{tenant_id}", http_client=self.http,
                    token_cache=self.token_cache, instance_discovery=False)
                self._apps[tenant_id] = app  # only once its authority was discovered
            return app

    def _token(self, tenant_id: str) -> str:
        if not isinstance(tenant_id, str) or not _TENANT.match(tenant_id):
            raise DirectoryUnavailable("the tenant id is not valid")
        try:
            result = self._app(tenant_id.lower()).acquire_token_for_client(scopes=[GRAPH_SCOPE])
        except (requests.RequestException, ValueError, RuntimeError) as e:
            raise DirectoryUnavailable(f"no token: {type(e).__name__}") from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            error = result.get("error") if isinstance(result, dict) else None
            raise DirectoryUnavailable(f"no token: {error or 'unexpected answer'}")
        return token

    # ------------------------------------------------------------------ Graph

    def throttled_for(self, tenant_id: str) -> float:
        """Seconds left before Graph may be asked again for this tenant (0: now)."""
        key = tenant_id.lower() if isinstance(tenant_id, str) else ""
        with self._lock:
            until = self._throttled_until.get(key)
            left = until - self.clock() if until is not None else 0.0
            if until is not None and left <= 0:
                del self._throttled_until[key]
        return max(0.0, left)

    def _throttled(self, tenant_id: str, resp: requests.Response) -> DirectoryThrottled:
        """Graph answered 429: remember its Retry-After for the tenant's next calls."""
        wait = retry_after_seconds(resp.headers.get("Retry-After"))
        key = tenant_id.lower()
        with self._lock:
            self._throttled_until[key] = max(self._throttled_until.get(key, 0.0), self.clock() + wait)
        log.info("Graph throttles tenant %s for %.0f s", key, wait)
        return DirectoryThrottled(wait)

    def _get(self, tenant_id: str, path_and_query: str) -> requests.Response:
        left = self.throttled_for(tenant_id)
        if left > 0:
            raise DirectoryThrottled(left)
        for attempt in (1, 2):
            token = self._token(tenant_id)
            try:
                resp = self.http.get(f"{self.graph_base}/v1.0{path_and_query}", timeout=self.timeout,
                                     headers={"Authorization": f"Bearer {token}", "ConsistencyLevel": "eventual",
                                              "Accept": "application/json"})
            except requests.RequestException as e:
                raise DirectoryUnavailable(f"Graph unreachable: {type(e).__name__}") from None
            if resp.status_code == 429:
                raise self._throttled(tenant_id, resp)
            if resp.status_code != 401 or attempt == 2:
                return resp
            # a cached token Graph no longer takes (revoked, rotated secret): drop it, ask once more
            self._app(tenant_id.lower()).remove_tokens_for_client()
        raise AssertionError("unreachable")

    @staticmethod
    def _json(resp: requests.Response) -> Any:
        if resp.status_code != 200:
            raise DirectoryUnavailable(f"Graph answered {resp.status_code}")
        try:
            return resp.json()
        except ValueError:
            raise DirectoryUnavailable("Graph answered something that is not JSON") from None

    @staticmethod
    def _person(item: Any) -> DirectoryPerson | None:
        if not isinstance(item, dict):
            return None
        oid, name = item.get("id"), item.get("displayName")
        email = item.get("mail") or item.get("userPrincipalName")
        if not (is_object_id(oid) and isinstance(name, str) and name.strip() and isinstance(email, str)
                and email.count("@") == 1):
            return None
        return DirectoryPerson(oid.lower(), " ".join(name.split())[:200], email.strip().lower()[:320])

    def search(self, tenant_id: str, query: str, top: int = 10) -> list[DirectoryPerson]:
        """People of the tenant whose name or e-mail address has a word starting with ``query``."""
        text = search_text(query)
        if not text:
            return []
        top = max(1, min(int(top), MAX_TOP))
        clause = f'"displayName:{text}" OR "mail:{text}"'
        path = (f"/users?$search={quote(clause, safe='')}&$select={quote(SELECT, safe=',')}&$top={top}")
        body = self._json(self._get(tenant_id, path))
        items = body.get("value") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise DirectoryUnavailable("Graph answered without a value list")
        return [p for p in map(self._person, items[:top]) if p is not None]

    def person(self, tenant_id: str, aad_object_id: str) -> DirectoryPerson | None:
        """One person of the tenant by object id (None: not in the directory)."""
        if not is_object_id(aad_object_id):
            return None
        resp = self._get(tenant_id, f"/users/{aad_object_id}?$select={quote(SELECT, safe=',')}")
        if resp.status_code == 404:
            return None
        return self._person(self._json(resp))
