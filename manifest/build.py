"""Build the License Desk Teams app package (manifest.json + icons, zipped).

``manifest.template.json`` holds ``{{APP_ID}}``, ``{{DOMAIN}}`` and ``{{VERSION}}``
placeholders.  They are substituted in the *parsed* JSON (string values only),
after the inputs have been validated, so the result is always valid JSON.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

MANIFEST_DIR = Path(__file__).resolve().parent
TEMPLATE_PATH = MANIFEST_DIR / "manifest.template.json"
COLOR_ICON_PATH = MANIFEST_DIR / "color.png"
OUTLINE_ICON_PATH = MANIFEST_DIR / "outline.png"

#: Teams manifest schema version used by the template.
MANIFEST_VERSION = "1.30"
#: App package version used when the caller does not give one.
DEFAULT_VERSION = "1.0.0"
#: File name used when ``build_package`` is given an existing directory.
DEFAULT_PACKAGE_NAME = "license-desk-teams-app.zip"

_GUID_RE = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Teams requires MAJOR.MINOR.PATCH, no pre-release/build suffix.
_VERSION_RE = re.compile(r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)")
_PLACEHOLDER_RE = re.compile(r"\{\{[A-Z_]+\}\}")
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # reproducible archives


def validate_app_id(app_id: str) -> str:
    """Return ``app_id`` if it is a GUID (the bot's Microsoft App ID), else raise ValueError."""
    if not isinstance(app_id, str) or not _GUID_RE.fullmatch(app_id):
        raise ValueError(
            "app_id must be a GUID like '00000000-0000-0000-0000-000000000000' "
            f"(the bot's Microsoft App ID); got {app_id!r}"
        )
    return app_id


def validate_domain(domain: str) -> str:
    """Return the lower-cased host name, or raise ValueError if ``domain`` is not a bare host name."""

    def bad(reason: str) -> ValueError:
        return ValueError(
            "domain must be a bare host name such as 'licensedesk.example.com' "
            f"(no scheme, port, path or wildcard): {reason}; got {domain!r}"
        )

    if not isinstance(domain, str) or not domain:
        raise bad("it is empty")
    if "://" in domain:
        raise bad("remove the scheme")
    if any(ch.isspace() for ch in domain):
        raise bad("it contains whitespace")
    for ch, what in (("/", "path"), ("?", "query"), ("#", "fragment"), ("@", "user info"), (":", "port")):
        if ch in domain:
            raise bad(f"remove the {what}")
    if "*" in domain:
        raise bad("wildcards are not accepted")
    if not domain.isascii():
        raise bad("use the punycode (xn--) form of internationalised names")
    host = domain.lower()
    if len(host) > 253:
        raise bad("it is longer than 253 characters")
    labels = host.split(".")
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise bad(f"invalid label {label!r} (letters, digits and inner hyphens only, 1-63 characters)")
    if labels[-1].isdigit():
        raise bad("IP addresses are not accepted, use a host name")
    return host


def validate_version(version: str) -> str:
    """Return ``version`` if it is MAJOR.MINOR.PATCH, else raise ValueError."""
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise ValueError(f"version must be MAJOR.MINOR.PATCH, e.g. '1.0.0'; got {version!r}")
    return version


def _substitute(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        for key, value in values.items():
            node = node.replace("{{" + key + "}}", value)
        return node
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _substitute(item, values) for key, item in node.items()}
    return node


def load_manifest(app_id: str, domain: str, version: str = DEFAULT_VERSION) -> dict[str, Any]:
    """Return the Teams manifest dict for this deployment (inputs validated, placeholders filled)."""
    values = {
        "APP_ID": validate_app_id(app_id),
        "DOMAIN": validate_domain(domain),
        "VERSION": validate_version(version),
    }
    template = json.loads(TEMPLATE_PATH.read_text(encoding="utf-8"))
    manifest = _substitute(template, values)
    leftover = _PLACEHOLDER_RE.search(json.dumps(manifest))
    if leftover:  # a template bug, not a caller error
        raise RuntimeError(f"unknown placeholder {leftover.group()} in {TEMPLATE_PATH}")
    return manifest


def build_package(app_id: str, domain: str, out_path: Path, version: str = DEFAULT_VERSION) -> Path:
    """Write the Teams app package zip (manifest.json, color.png, outline.png at its root).

    ``out_path`` is the zip file to write (parent directories are created); if it is
    an existing directory, ``DEFAULT_PACKAGE_NAME`` is written inside it.  The file is
    replaced atomically.  Returns the path written.  Raises ValueError for a bad
    ``app_id``, ``domain`` or ``version``.
    """
    manifest = load_manifest(app_id, domain, version)
    out_path = Path(out_path)
    if out_path.is_dir():
        out_path = out_path / DEFAULT_PACKAGE_NAME
    out_path.parent.mkdir(parents=True, exist_ok=True)

    icons = manifest["icons"]
    members = {
        "manifest.json": (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        icons["color"]: COLOR_ICON_PATH.read_bytes(),
        icons["outline"]: OUTLINE_ICON_PATH.read_bytes(),
    }

    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out_path
