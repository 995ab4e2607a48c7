"""``GET /audit/export/<token>``: an administrator downloads the account's audit log as CSV.

The token is made by the audit card (``ExportLinks.url``) and carries the account id, the
administrator's user id and an expiry (10 minutes), signed with HMAC-SHA256 under
``LINK_SECRET``. The route checks the signature and the expiry against the core's clock,
re-checks in the database that the user is still an administrator of that account, then
streams the CSV. Every refusal is a small HTML page (403 or 410) and an audit event.

Without ``LINK_SECRET`` a random secret is made per process: links then only work on the
instance that made them (set ``LINK_SECRET`` when running several instances).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import html
import logging
import queue
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from cards.catalogs import N_
from cards.i18n import T
from cards.i18n import language as i18n_language
from cards.web_locale import page_locale
from core.config import Settings
from core.errors import InvalidInput, NotAdmin, UnknownCaller
from core.kinds import AuditAction
from core.licensing import Licensing

log = logging.getLogger(__name__)

LINK_TTL = timedelta(minutes=10)
ROUTE = "/audit/export/{token}"
_PURPOSE = b"license-desk/audit-export/v1\n"
_TOKEN = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")
_CHUNK = 64 * 1024

_process_secret = secrets.token_bytes(32)
_warned = threading.Event()


def link_secret(settings: Settings) -> bytes:
    """``LINK_SECRET``, or a random secret made once per process (with a warning)."""
    configured = settings.link_secret.get_secret_value() if settings.link_secret else ""
    if configured:
        return configured.encode("utf-8")
    if not _warned.is_set():
        _warned.set()
        log.warning("LINK_SECRET is not set: audit download links are signed with a random per-process secret, "
                    "so they only work on the instance that made them (and not after a restart).")
    return _process_secret


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Claim:
    account_id: int
    user_id: int
    expires_at: datetime


class ExportLinks:
    """Makes and reads the signed download links."""

    def __init__(self, base_url: str, secret: bytes, clock: Callable[[], datetime], ttl: timedelta = LINK_TTL):
        if not secret:
            raise ValueError("an empty link secret")
        self.base_url = base_url.rstrip("/")
        self._secret = secret
        self.clock = clock
        self.ttl = ttl

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, _PURPOSE + payload.encode("ascii"), hashlib.sha256).digest())

    def token(self, account_id: int, user_id: int, expires_at: datetime | None = None) -> str:
        expires = expires_at or self.clock() + self.ttl
        payload = f"{int(account_id)}.{int(user_id)}.{int(expires.timestamp())}"
        return f"{payload}.{self._sign(payload)}"

    def url(self, account_id: int, user_id: int) -> str:
        return f"{self.base_url}/audit/export/{self.token(account_id, user_id)}"

    def read(self, token: str) -> Claim | None:
        """The claim of a well-formed token with a valid signature (expired or not); else None."""
        m = _TOKEN.fullmatch(token or "")
        if m is None:
            return None
        payload = f"{m[1]}.{m[2]}.{m[3]}"
        if not hmac.compare_digest(self._sign(payload), m[4]):
            return None
        return Claim(int(m[1]), int(m[2]), datetime.fromtimestamp(int(m[3]), UTC))


# ---------------------------------------------------------------------------- pages

# state -> (heading, explanation): catalog keys
_PAGES = {
    "invalid": (N_("export.title.invalid"), N_("export.body.invalid")),
    "expired": (N_("export.title.expired"), N_("export.body.expired")),
    "not_admin": (N_("export.title.not_admin"), N_("export.body.not_admin")),
    "unavailable": (N_("export.title.unavailable"), N_("export.body.unavailable")),
}


def csv_headers(lang: str) -> list[str]:
    """The CSV's column names in the reader's language (one catalog string, comma-separated)."""
    return T(lang).pgettext("csv", "export.columns").split(",")


_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff"}


def language(accept_language: str | None) -> str:
    """The page language (en or fr) for an Accept-Language header, negotiated as the payment
    pages do (quality values honoured, ``q=0`` excluded; en by default)."""
    return i18n_language(page_locale(accept_language))


def page(state: str, lang: str, status: int) -> web.Response:
    t = T(lang)
    heading, message = (t(key) for key in _PAGES[state])
    body = (f'<!doctype html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="robots" content="noindex">\n'
            f"<title>{html.escape(t('app.name'))} – {html.escape(heading)}</title>\n"
            "<style>body{font-family:system-ui,-apple-system,\"Segoe UI\",sans-serif;max-width:40rem;margin:2rem auto;"
            "padding:0 1rem;color:#242424} .state{padding:1rem;border-radius:4px;background:#fde7e9}</style>\n"
            f'</head>\n<body>\n<h1>{html.escape(heading)}</h1>\n'
            f'<p class="state" id="state" data-state="{state}">{html.escape(message)}</p>\n'
            f"<p>{html.escape(t('pay.close'))}</p>\n</body>\n</html>\n")
    return web.Response(text=body, content_type="text/html", charset="utf-8", status=status, headers=_HEADERS)


def filename(account_name: str, account_id: int, day: datetime) -> str:
    ascii_name = unicodedata.normalize("NFKD", account_name or "").encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-") or str(account_id)
    return f"license-desk-audit-{slug}-{day:%Y-%m-%d}.csv"


# ---------------------------------------------------------------------------- the route


class _Stopped(Exception):
    pass


class _ChunkWriter:
    """A text file for ``csv.writer`` in a worker thread: hands 64 KB chunks to the response
    through a bounded queue (so a slow client slows the export down rather than filling memory)."""

    def __init__(self, out: queue.Queue, stop: threading.Event):
        self.out, self.stop = out, stop
        self.parts: list[str] = []
        self.size = 0

    def write(self, s: str) -> int:
        self.parts.append(s)
        self.size += len(s)
        if self.size >= _CHUNK:
            self.flush()
        return len(s)

    def flush(self) -> None:
        if self.parts:
            data = "".join(self.parts).encode("utf-8")
            self.parts, self.size = [], 0
            self.put(data)

    def put(self, item) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                self.out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue


_DONE = object()


def _get(out: queue.Queue, stop: threading.Event):
    """The next chunk (in a worker thread); gives up once the response side stopped, so that a
    client gone half-way leaves no thread behind."""
    while not stop.is_set():
        try:
            return out.get(timeout=0.5)
        except queue.Empty:
            continue
    return _DONE


async def _stream_csv(request: web.Request, lic: Licensing, account_id: int, name: str, lang: str):
    out: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()
    writer = _ChunkWriter(out, stop)

    def produce():
        try:
            lic.audit.export_csv(account_id, out=writer, headers=csv_headers(lang),
                                 say=T(lang).say)
            writer.flush()
            writer.put(_DONE)
        except _Stopped:
            pass
        except Exception as e:  # handed to the response side, which logs it
            with contextlib.suppress(_Stopped):
                writer.put(e)

    producer = asyncio.get_running_loop().run_in_executor(None, produce)
    resp: web.StreamResponse | None = None
    try:
        while True:
            item = await asyncio.to_thread(_get, out, stop)
            if item is _DONE:
                break
            if isinstance(item, Exception):
                log.error("audit export of account %s failed", account_id, exc_info=item)
                if resp is None:
                    return page("unavailable", lang, 503)
                raise ConnectionAbortedError("audit export failed half-way")  # the client sees a broken download
            if resp is None:
                resp = web.StreamResponse(status=200, headers={
                    **_HEADERS, "Content-Type": "text/csv; charset=utf-8",
                    "Content-Disposition": f'attachment; filename="{filename(name, account_id, lic.now())}"'})
                await resp.prepare(request)
            await resp.write(item)
        if resp is None:  # cannot happen (the header row is always written), but never answer nothing
            return page("unavailable", lang, 503)
        await resp.write_eof()
        return resp
    finally:
        stop.set()
        while True:  # unblock the producer if it is waiting on a full queue
            try:
                out.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(Exception):
            await producer


class AuditExport:
    """The download route's handler: the core, and the links it reads."""

    def __init__(self, lic: Licensing, links: ExportLinks):
        self.lic = lic
        self.links = links

    async def handle(self, request: web.Request) -> web.StreamResponse:
        return await export_audit(request, self.lic, self.links)


async def export_audit(request: web.Request, lic: Licensing, links: ExportLinks) -> web.StreamResponse:
    lang = language(request.headers.get("Accept-Language"))
    token = request.match_info.get("token", "")

    def check():
        """(state, status) of a refusal (audited), or the administrator."""
        claim = links.read(token)
        if claim is None:
            lic.audit.record_refusal(None, AuditAction.AUDIT_EXPORT, InvalidInput(
                "An audit download link was refused: it is altered or incomplete."), f"link:{token[:24]}")
            return ("invalid", 403), None
        actor = lic.accounts.user_actor(claim.account_id, claim.user_id)
        target = f"account:{claim.account_id}"
        if actor is None:
            lic.audit.record_refusal(None, AuditAction.AUDIT_EXPORT, InvalidInput(
                "An audit download link was refused: the person it was made for is no longer a user of the "
                "account."), target)
            return ("not_admin", 403), None
        if lic.now() >= claim.expires_at:
            lic.audit.record_refusal(actor, AuditAction.AUDIT_EXPORT, InvalidInput(
                "The audit download link has expired (links work for 10 minutes)."), target)
            return ("expired", 410), None
        try:
            caller = lic.audit.authorize_export(actor)  # NotAdmin / UnknownCaller: audited by the core
        except (NotAdmin, UnknownCaller):
            return ("not_admin", 403), None
        if caller.account_id != claim.account_id:  # cannot happen: user_actor is scoped to the account
            lic.audit.record_refusal(actor, AuditAction.AUDIT_EXPORT, InvalidInput("The link names another account."),
                                     target)
            return ("not_admin", 403), None
        return None, caller

    try:
        refused, caller = await asyncio.to_thread(check)
    except Exception:  # e.g. the database is busy: a page, never a stack trace
        log.exception("audit export: the check failed")
        return page("unavailable", lang, 503)
    if refused:
        state, status = refused
        return page(state, lang, status)
    return await _stream_csv(request, lic, caller.account_id, caller.account_name, lang)
