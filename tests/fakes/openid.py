"""A fake of the Bot Framework's token services, over real HTTPS, so that production mode
(a MicrosoftAppId set: every inbound request carries a JWT) runs offline end to end.

It plays three Microsoft endpoints:

* the Bot Connector's OpenID metadata (``TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL``) and its
  JWKS: the public keys that sign the tokens Teams' Bot Connector sends to the bot (issuer
  ``https://api.botframework.com``, audience = the bot's app id, a ``serviceurl`` claim; each
  key lists the channels it ``endorses``);
* Azure AD's OpenID metadata (``TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL``, the keys of
  "emulator" tokens) with a key of its own;
* the login endpoint (``TO_CHANNEL_FROM_BOT_LOGIN_URL``): MSAL's tenant discovery and the
  ``client_credentials`` token endpoint that gives the bot its outbound token (the fake checks
  the client id and secret and records every token request).

The keys are RSA keys generated here; :meth:`FakeOpenId.token` signs tokens with them (or with
a key the JWKS does not list, for forgeries). The server runs in a thread (botbuilder fetches
the metadata with blocking ``requests`` calls from the event loop) over TLS with a CA made
here: :meth:`FakeOpenId.trust` points ``requests`` at it (``REQUESTS_CA_BUNDLE``) and tells
MSAL that the host is an authority it may use without asking login.microsoftonline.com
(instance discovery), so nothing leaves the machine::

    with FakeOpenId(app_id, app_password) as idp:
        idp.trust(monkeypatch)
        settings = idp.settings()          # the botbuilder settings, by their env var names
        token = idp.token(service_url=...)  # a valid Bot Connector token
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import ipaddress
import json
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

CHANNEL_ISSUER = "https://api.botframework.com"
OAUTH_SCOPE = "https://api.botframework.com"
CALLER_ID = "urn:botframework:azure"
# An Azure AD issuer that botbuilder routes to its "emulator" validation.
AAD_ISSUER = "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/"
TENANT_PATH = "botframework.com"


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Key:
    kid: str
    private: rsa.RSAPrivateKey
    endorsements: list[str] = field(default_factory=lambda: ["msteams"])

    @classmethod
    def new(cls, kid: str, endorsements: list[str] | None = None, *, slot: str | None = None) -> Key:
        return cls(kid, _rsa(slot or kid), ["msteams"] if endorsements is None else endorsements)

    @property
    def pem(self) -> bytes:
        return self.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())

    def jwk(self) -> dict:
        pub = self.private.public_key().public_numbers()
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "n": _b64(pub.n), "e": _b64(pub.e),
                "endorsements": list(self.endorsements)}


@functools.cache
def _rsa(slot: str) -> rsa.RSAPrivateKey:
    """One RSA key per name for the whole test session (generating them is the slow part)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = _rsa("tls-ca")
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "License Desk test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = _rsa("tls-server")
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class FakeOpenId:
    def __init__(self, app_id: str, app_password: str):
        self.app_id = app_id
        self.app_password = app_password
        self.channel_key = Key.new("channel-key-1")  # the Bot Connector's signing key (endorses msteams)
        self.other_channel_key = Key.new("webchat-key", ["webchat"])  # a listed key that does not endorse msteams
        self.aad_key = Key.new("aad-key-1", [])  # Azure AD's key ("emulator" tokens)
        self.rogue_key = Key.new("channel-key-1", slot="rogue")  # same kid as the real one, not listed: a forgery
        self.token_requests: list[dict] = []  # the forms POSTed to the token endpoint
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.issued: list[str] = []  # access tokens given to the bot
        self._dir = tempfile.TemporaryDirectory(prefix="fake-openid-")
        self.ca_file, cert, key = _tls_files(Path(self._dir.name))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self.base_url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeOpenId:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openid", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._dir.cleanup()

    def __enter__(self) -> FakeOpenId:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def trust(self, monkeypatch) -> None:
        """Make ``requests`` trust this server's CA, and MSAL take it as a known authority."""
        import msal.authority

        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(self.ca_file))
        monkeypatch.setattr(msal.authority, "WELL_KNOWN_AUTHORITY_HOSTS",
                            set(msal.authority.WELL_KNOWN_AUTHORITY_HOSTS) | {"127.0.0.1"})

    # ------------------------------------------------------------------ what the bot is told

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/v1/.well-known/openidconfiguration"

    @property
    def emulator_metadata_url(self) -> str:
        return f"{self.base_url}/common/v2.0/.well-known/openid-configuration"

    @property
    def login_url(self) -> str:
        return f"{self.base_url}/{TENANT_PATH}"

    def settings(self) -> dict[str, str]:
        """botbuilder's configuration settings (by their environment variable names), all
        pointed at this fake."""
        return {
            "TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL": self.metadata_url,
            "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL": self.emulator_metadata_url,
            "TO_BOT_FROM_CHANNEL_TOKEN_ISSUER": CHANNEL_ISSUER,
            "TO_CHANNEL_FROM_BOT_LOGIN_URL": self.login_url,
            "TO_CHANNEL_FROM_BOT_OAUTH_SCOPE": OAUTH_SCOPE,
            "OAUTH_URL": f"{self.base_url}/oauth",
            "VALIDATE_AUTHORITY": "false",
            "CALLER_ID": CALLER_ID,
        }

    # ------------------------------------------------------------------ tokens

    def claims(self, service_url: str, **overrides) -> dict:
        """The claims of a Bot Connector token for this bot (``None`` values are removed)."""
        now = int(time.time())
        claims = {"iss": CHANNEL_ISSUER, "aud": self.app_id, "serviceurl": service_url,
                  "nbf": now - 60, "iat": now - 60, "exp": now + 3600, "jti": uuid.uuid4().hex}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, service_url: str = "", *, key: Key | None = None, kid: str | None = "", alg: str = "RS256",
              **overrides) -> str:
        """A signed token; ``key`` defaults to the Bot Connector's key, ``kid`` to the key's
        (``None``: no kid header)."""
        key = key or self.channel_key
        headers = {"typ": "JWT"}
        kid = key.kid if kid == "" else kid
        if kid is not None:
            headers["kid"] = kid
        secret = key.pem if alg.startswith(("RS", "PS")) else self.app_password.encode()
        return jwt.encode(self.claims(service_url, **overrides), secret, algorithm=alg, headers=headers)

    # ------------------------------------------------------------------ the server

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                path = urlsplit(self.path).path
                fake.requests.append(("GET", path))
                base = fake.base_url
                if path == "/v1/.well-known/openidconfiguration":
                    return self._json(200, {"issuer": CHANNEL_ISSUER, "jwks_uri": f"{base}/v1/.well-known/keys",
                                            "authorization_endpoint": f"{base}/v1/auth",
                                            "id_token_signing_alg_values_supported": ["RS256"],
                                            "token_endpoint_auth_methods_supported": ["private_key_jwt"]})
                if path == "/v1/.well-known/keys":
                    return self._json(200, {"keys": [fake.channel_key.jwk(), fake.other_channel_key.jwk()]})
                if path == "/common/v2.0/.well-known/openid-configuration":
                    return self._json(200, {"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
                                            "jwks_uri": f"{base}/common/discovery/v2.0/keys"})
                if path == "/common/discovery/v2.0/keys":
                    return self._json(200, {"keys": [fake.aad_key.jwk()]})
                if path == f"/{TENANT_PATH}/v2.0/.well-known/openid-configuration":  # MSAL's tenant discovery
                    return self._json(200, {
                        "issuer": f"{base}/{TENANT_PATH}/v2.0",
                        "authorization_endpoint": f"{base}/{TENANT_PATH}/oauth2/v2.0/authorize",
                        "token_endpoint": f"{base}/{TENANT_PATH}/oauth2/v2.0/token",
                        "jwks_uri": f"{base}/common/discovery/v2.0/keys"})
                return self._json(404, {"error": "not_found"})

            def do_POST(self):  # noqa: N802
                path = urlsplit(self.path).path
                fake.requests.append(("POST", path))
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if path != f"/{TENANT_PATH}/oauth2/v2.0/token":
                    return self._json(404, {"error": "not_found"})
                fake.token_requests.append(form)
                if (form.get("grant_type") != "client_credentials" or form.get("client_id") != fake.app_id
                        or form.get("client_secret") != fake.app_password):
                    return self._json(401, {"error": "invalid_client", "error_description": "Bad credentials."})
                access = f"outbound-{uuid.uuid4().hex}"
                fake.issued.append(access)
                return self._json(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600,
                                        "access_token": access})

        return Handler


# ============================================================================ the app in production mode


APP_ID = "5f0c7a52-6d1e-4c4b-9a43-2b8e9d1f0a77"
APP_PASSWORD = "Xq8~app-password.not-a-real-one_7731"


@contextlib.asynccontextmanager
async def production_desk(idp: FakeOpenId, monkeypatch, **kw):
    """``tests.harness.running_desk`` in production mode: a MicrosoftAppId and password, the
    botbuilder endpoints on ``idp`` (:meth:`FakeOpenId.trust` is called), and every activity the
    harness posts signed by the Bot Connector's key for its ``serviceUrl`` (``desk.signing =
    False`` posts without a token). Extra settings (by env name) in ``kw`` go to the app."""
    from tests import harness

    idp.trust(monkeypatch)
    real = harness.Settings
    settings = {k: kw.pop(k) for k in list(kw) if k.isupper() or k.startswith("Microsoft")}
    overrides = {**idp.settings(), "MicrosoftAppId": idp.app_id, "MicrosoftAppPassword": idp.app_password,
                 **settings}
    monkeypatch.setattr(harness, "Settings", lambda **given: real(**{**given, **overrides}))

    class SignedDesk(harness.Desk):
        signing = True

        async def post_json(self, path: str, body) -> harness.HttpResult:
            headers = {}
            if self.signing and isinstance(body, dict):
                headers["Authorization"] = f"Bearer {idp.token(str(body.get('serviceUrl') or ''))}"
            return await self.post_raw(path, json.dumps(body), headers=headers)

    desk = await SignedDesk.start(**kw)
    try:
        yield desk
    finally:
        await desk.close()
