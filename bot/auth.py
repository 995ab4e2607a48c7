"""Who may call ``/api/messages``, and what the logs may say about it.

Production mode (a MicrosoftAppId): every inbound request carries a JWT from the Bot
Connector. botbuilder validates it (signature against the keys of the OpenID metadata's
``jwks_uri``, issuer, audience = the app id, expiry, the channel's endorsement, ``serviceurl``
claim), but answers some bad tokens with exceptions other than ``PermissionError`` (a
malformed token, an unknown key id, a bad signature or an expired token raise PyJWT errors,
``IndexError`` or a bare ``Exception``: HTTP 500), and accepts two kinds of token this bot has
no use for: Azure AD ("emulator") tokens for its own app id, which carry no ``serviceurl`` claim;
any token when the activity has no ``serviceUrl`` (the claim is not compared); and a key that
does not endorse the channel when the activity has no ``channelId``. :func:`authenticate` maps
every failure to :class:`Unauthorized` and requires, on top of botbuilder's checks, a
``serviceUrl`` and a ``channelId``, the Bot Connector's issuer and a ``serviceurl`` claim equal to
the activity's ``serviceUrl``.

Local mode (no app id) keeps botbuilder's anonymous path (``bot.guards`` accepts loopback
callers only).

:func:`botbuilder_settings` gives botbuilder its endpoints from the settings (unset: Microsoft's
public cloud); :func:`clean_activity` drops control characters from what users send; and
:func:`install_log_redaction` keeps secrets, tokens and card payloads out of every log record,
whatever the loggers' levels.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import jwt
import requests
from botbuilder.schema import Activity
from botframework.connector.auth import AuthenticateRequestResult, AuthenticationConstants, BotFrameworkAuthentication

from core.config import Settings

log = logging.getLogger(__name__)

PUBLIC_CLOUD = {  # botbuilder's public-cloud values (_PublicCloudBotFrameworkAuthentication)
    "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
    "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL": AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
    "TO_BOT_FROM_CHANNEL_TOKEN_ISSUER": AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
    "TO_CHANNEL_FROM_BOT_LOGIN_URL": AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX,
    "TO_CHANNEL_FROM_BOT_OAUTH_SCOPE": AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
    "OAUTH_URL": AuthenticationConstants.OAUTH_URL,
    "CALLER_ID": "urn:botframework:azure",  # CallerIdConstants.public_azure_channel
}


def botbuilder_settings(settings: Settings) -> dict:
    """The authentication attributes of botbuilder's configuration object.

    With an app id and no CHANNEL_SERVICE (government clouds keep botbuilder's built-in
    constants), every endpoint is given, Microsoft's public cloud value filling what is unset:
    botbuilder then takes its "parameterized" path, the same code with the same values as its
    public-cloud default, which is also the path the offline tests run (pointed at a fake)."""
    given = {
        "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": settings.to_bot_from_channel_openid_metadata_url,
        "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL": settings.to_bot_from_emulator_openid_metadata_url,
        "TO_BOT_FROM_CHANNEL_TOKEN_ISSUER": settings.to_bot_from_channel_token_issuer,
        "TO_CHANNEL_FROM_BOT_LOGIN_URL": settings.to_channel_from_bot_login_url,
        "TO_CHANNEL_FROM_BOT_OAUTH_SCOPE": settings.to_channel_from_bot_oauth_scope,
        "OAUTH_URL": settings.oauth_url,
        "CALLER_ID": settings.caller_id,
    }
    out = {k: v for k, v in given.items() if v}
    if settings.channel_service:
        out["CHANNEL_SERVICE"] = settings.channel_service
    elif settings.app_id:
        out = {**PUBLIC_CLOUD, **out}
    if settings.validate_authority is not None:
        out["VALIDATE_AUTHORITY"] = settings.validate_authority
    return out


def channel_issuer(settings: Settings) -> str:
    return settings.to_bot_from_channel_token_issuer or AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER


# ============================================================================ inbound requests


class Unauthorized(Exception):
    """The request is not from the Bot Connector for this bot (answered 401). ``reason`` is
    for the log: short, and never the token."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class AuthUnavailable(Exception):
    """The keys to check tokens with could not be fetched (answered 503)."""


def _why(error: Exception) -> str:
    """A short reason for the log (botbuilder's messages hold no token, but can hold claims)."""
    known = {jwt.ExpiredSignatureError: "expired token", jwt.ImmatureSignatureError: "token not valid yet",
             jwt.InvalidSignatureError: "bad signature", jwt.DecodeError: "malformed token",
             jwt.InvalidAlgorithmError: "algorithm not allowed", IndexError: "unknown signing key",
             KeyError: "token without a required claim"}
    for kind, text in known.items():
        if isinstance(error, kind):
            return text
    if isinstance(error, jwt.PyJWTError):
        return f"invalid token ({type(error).__name__})"
    return redact(f"{type(error).__name__}: {error}")[:160]


_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")  # RFC 7515 compact serialization


def check_bearer(header: str | None) -> None:
    """Refuse (:class:`Unauthorized`) an ``Authorization`` header that cannot hold a Bot
    Connector token: not ``Bearer <one JWS>`` (RFC 6750 §2.1; RFC 7515 §7.1: three base64url
    parts) whose JOSE header decodes. Cheap (~10 µs), so a request is refused on it before its
    body is read; the signature and claims are checked later, by :func:`authenticate`."""
    scheme, _, token = (header or "").partition(" ")
    if scheme != "Bearer" or not _JWS.fullmatch(token.strip()):
        raise Unauthorized("no bearer token" if not header else "not a bearer token")
    try:
        jwt.get_unverified_header(token.strip())
    except jwt.PyJWTError:
        raise Unauthorized("malformed token") from None


async def authenticate(bfa: BotFrameworkAuthentication, activity: Activity, header: str | None, *,
                       required: bool, issuer: str) -> AuthenticateRequestResult:
    """botbuilder's ``authenticate_request``, with every failure mapped to :class:`Unauthorized`
    (or :class:`AuthUnavailable`) and, when ``required`` (production), the checks it skips."""
    header = header or None  # botbuilder's anonymous path (local mode) wants None, not ""
    if required:  # (the bearer's shape was checked before the body was read: bot/guards.py)
        if not header:
            raise Unauthorized("no bearer token")
        if not activity.service_url or not activity.channel_id:
            raise Unauthorized("activity without serviceUrl or channelId")  # botbuilder would skip checks
    try:
        result = await bfa.authenticate_request(activity, header)
    except requests.RequestException as e:  # the OpenID metadata or its keys are unreachable
        raise AuthUnavailable(type(e).__name__) from None
    except Exception as e:  # PermissionError, PyJWT errors, IndexError, Exception("...endorsement...")
        raise Unauthorized(_why(e)) from None
    if required:
        claims = result.claims_identity.claims if result.claims_identity else {}
        if claims.get(AuthenticationConstants.ISSUER_CLAIM) != issuer:
            raise Unauthorized("not a Bot Connector token")
        if claims.get(AuthenticationConstants.SERVICE_URL_CLAIM) != activity.service_url:
            raise Unauthorized("serviceurl claim does not match the activity")
    return result


def is_loopback(host: str | None) -> bool:
    """Whether an IP address (or host name "localhost") is this machine's: 127.0.0.0/8, ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def local_service_url(url: str | None) -> bool:
    """Whether local mode (no app id, loopback callers) may reply to and store ``url``: an
    http(s) URL on a loopback host (any port), nothing else. Without a token nothing vouches for
    a ``serviceUrl``; a loopback caller naming ``http://169.254.169.254/``, ``file://`` or a
    host of the network would make the bot post there now and in every later notification."""
    if not isinstance(url, str):
        return False
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 (raises ValueError for a port that is not one)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and parsed.username is None and is_loopback(parsed.hostname)


# ============================================================================ inbound text


_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\ud800-\udfff]")


def _clean(text: str) -> str:
    return _UNSAFE.sub("", text) if _UNSAFE.search(text) else text


def clean_activity(activity: Activity) -> None:
    """Drop what no person types from the text and the card data (in place): control
    characters (tab and newlines kept), lone surrogates (they cannot be stored: a refusal
    would not even be audited) and bidi overrides (text that displays other than it reads)."""
    if isinstance(activity.text, str):
        activity.text = _clean(activity.text)
    if isinstance(activity.value, str):
        activity.value = _clean(activity.value)
    stack = [activity.value] if isinstance(activity.value, dict | list) else []
    while stack:  # iterative: card data can be nested deeper than Python's recursion limit
        node = stack.pop()
        if isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, str):
                    node[i] = _clean(v)
                elif isinstance(v, dict | list):
                    stack.append(v)
        else:
            for k in list(node):
                v = node[k]
                if isinstance(k, str) and _UNSAFE.search(k):
                    del node[k]
                    k = _clean(k)
                    node[k] = v
                if isinstance(v, str):
                    node[k] = _clean(v)
                elif isinstance(v, dict | list):
                    stack.append(v)


# ============================================================================ logs


_JWT = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s'\",;]+")
_AUTH_HEADER = re.compile(r"(?i)(['\"]?(?:authorization|x-ms-[\w-]*token|cookie)['\"]?\s*[:=]\s*)(['\"]?)[^'\"\r\n]+\2")
_FORM_SECRET = re.compile(r"(?i)((?:client_secret|client_assertion|password|access_token|refresh_token|api_key)"
                          r"['\"]?\s*[=:]\s*['\"]?)[^&'\"\s,}]+")
_STRIPE_KEY = re.compile(r"\b(?:sk|rk|whsec)_(?:test_|live_)?[A-Za-z0-9_]{8,}")
_CARD = re.compile(r"application/vnd\.microsoft\.card\.adaptive|[\"']?type[\"']?\s*:\s*[\"']AdaptiveCard[\"']")
REDACTED = "[redacted]"
_secrets: set[str] = set()


def redact(text: str) -> str:
    """``text`` without secrets, tokens or card payloads."""
    if _CARD.search(text):
        return "[a message holding an Adaptive Card payload; not logged]"
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    text = _AUTH_HEADER.sub(rf"\1\2{REDACTED}\2", text)
    text = _FORM_SECRET.sub(rf"\1{REDACTED}", text)
    return _STRIPE_KEY.sub(REDACTED, text)


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a record whose arguments do not format: keep its template only
        message = str(record.msg)
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        text = logging.Formatter().formatException(record.exc_info)
        clean_exc = redact(text)
        if clean_exc != text:  # keep the traceback, without what it held
            record.exc_text = clean_exc


_installed: dict = {"count": 0, "previous": None, "factory": None}


def _factory(*args, **kwargs) -> logging.LogRecord:
    record = _installed["previous"](*args, **kwargs)
    try:
        _redact_record(record)
    except Exception:  # never lose a log record to redaction
        record.msg, record.args = "[log record withheld: it could not be redacted]", None
    return record


def install_log_redaction(secrets: Iterable[str | None] = ()) -> Callable[[], None]:
    """Redact every log record of the process when it is created (any logger, any handler, any
    level, including third-party DEBUG output such as msrest's HTTP dumps or msal's traces):
    the given secrets, JWTs, ``Bearer`` values, Authorization headers, form secrets, Stripe keys;
    a record holding an Adaptive Card is replaced by a one-line note.

    Returns the function that undoes it (the app calls it on cleanup; installs nest)."""
    _secrets.update(s for s in secrets if s and len(s) >= 6)
    if _installed["count"] == 0:
        _installed["previous"] = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_factory)
    _installed["count"] += 1
    done = False

    def uninstall() -> None:
        nonlocal done
        if done:
            return
        done = True
        _installed["count"] -= 1
        if _installed["count"] == 0:
            if logging.getLogRecordFactory() is _factory:
                logging.setLogRecordFactory(_installed["previous"])
            _secrets.clear()

    return uninstall


def settings_secrets(settings: Settings) -> list[str]:
    values = [settings.app_password, settings.stripe_api_key, settings.stripe_webhook_secret, settings.link_secret]
    return [v.get_secret_value() for v in values if v is not None]
