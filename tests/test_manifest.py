"""The Teams app package: manifest validity (against the schema shipped in
node_modules/@microsoft/app-manifest), icons, zip contents and input checks."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest
from jsonschema import Draft6Validator, FormatChecker, ValidationError, validators
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from manifest import build_package, load_manifest
from manifest.build import COLOR_ICON_PATH, OUTLINE_ICON_PATH, TEMPLATE_PATH

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_MANIFEST_PKG = REPO_ROOT / "node_modules" / "@microsoft" / "app-manifest"
SCHEMA_URL_PREFIX = "https://developer.microsoft.com/json-schemas/"
LOCAL_SCHEMAS = APP_MANIFEST_PKG / "build" / "json-schemas"

APP_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
DOMAIN = "licensedesk.example.com"
BOT_COMMANDS = {"licenses", "buy", "assign", "requests", "audit", "mylicense", "help"}
BOT_SCOPES = {"personal", "team", "groupChat"}


# --------------------------------------------------------------------------- schema


def _require_app_manifest_package() -> None:
    if not LOCAL_SCHEMAS.is_dir():
        pytest.fail(
            f"{APP_MANIFEST_PKG} is missing (no build/json-schemas inside): "
            f"run `npm install` in {REPO_ROOT} to get the Teams manifest JSON schemas",
            pytrace=False,
        )


def _local_schema_path(url: str) -> Path:
    """Map a developer.microsoft.com schema URL to the copy shipped in the npm package."""
    url = url.split("#", 1)[0]
    if not url.startswith(SCHEMA_URL_PREFIX):
        raise NoSuchResource(ref=url)
    path = (LOCAL_SCHEMAS / url.removeprefix(SCHEMA_URL_PREFIX)).resolve()
    if not path.is_relative_to(LOCAL_SCHEMAS.resolve()) or not path.is_file():
        raise NoSuchResource(ref=url)
    return path


def _retrieve(uri: str) -> Resource:
    # Only ever the local package files, never the network.
    return Resource.from_contents(json.loads(_local_schema_path(uri).read_text(encoding="utf-8")))


def _python_regex(pattern: str) -> str:
    """ECMAScript -> Python ``re``: the schemas use ``\\p{L}`` (Unicode letter), which ``re``
    lacks. Approximate it with ``\\w`` (a superset); it only appears under ``extensions``."""
    return re.sub(r"\\[pP]\{[^}]*\}", lambda m: r"\w" if m.group()[1] == "p" else r"\W", pattern)


def _pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not re.search(_python_regex(pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_format_checker = FormatChecker()


@_format_checker.checks("regex", raises=re.error)
def _is_ecmascript_regex(instance: object) -> bool:
    return not isinstance(instance, str) or bool(re.compile(_python_regex(instance)))


@pytest.fixture(scope="session")
def manifest() -> dict:
    return load_manifest(APP_ID, DOMAIN)


@pytest.fixture(scope="session")
def schema_path(manifest) -> Path:
    _require_app_manifest_package()
    try:
        return _local_schema_path(manifest["$schema"])
    except NoSuchResource:
        pytest.fail(
            f"schema {manifest['$schema']} is not shipped in {APP_MANIFEST_PKG}; "
            "run `npm install` or fix manifestVersion/$schema in the template",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def schema(schema_path) -> dict:
    return json.loads(schema_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def validator(schema):
    base = validators.validator_for(schema, default=None)
    assert base is not None, f"unknown $schema dialect {schema.get('$schema')!r}"
    # The Teams schemas declare draft-04 but use "const" (draft-06+), which ajv - the
    # validator Microsoft's tooling uses - enforces; Draft4Validator would ignore it.
    extra = {"pattern": _pattern}
    if "const" not in base.VALIDATORS:
        extra["const"] = Draft6Validator.VALIDATORS["const"]
    cls = validators.extend(base, extra)
    cls.check_schema(schema, format_checker=_format_checker)
    registry = Registry(retrieve=_retrieve)
    return cls(schema, registry=registry, format_checker=base.FORMAT_CHECKER)


def _errors(validator, instance) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
    ]


def test_manifest_validates_against_shipped_schema(manifest, validator):
    assert _errors(validator, manifest) == []


def test_validator_catches_errors(manifest, validator):
    broken = json.loads(json.dumps(manifest))
    broken["manifestVersion"] = "0.9"  # const
    broken["accentColor"] = "blue"  # pattern
    del broken["developer"]  # required
    broken["bots"][0]["commandLists"][0]["commands"] *= 3  # maxItems
    errors = "\n".join(_errors(validator, broken))
    for needle in ("manifestVersion", "accentColor", "developer", "commandLists/0/commands"):
        assert needle in errors


def test_manifest_version_and_schema_url(manifest, schema_path):
    version = manifest["manifestVersion"]
    assert version == "1.30"
    assert schema_path.parent.name == f"v{version}"
    assert schema_path.name == "MicrosoftTeams.schema.json"


def test_manifest_validates_with_ajv(manifest, schema_path, tmp_path):
    """Cross-check with ajv configured as AppManifestUtils.validateAgainstSchema does it.

    (@microsoft/app-manifest 1.1.2 itself cannot be require()d: it needs fs-extra, which it
    only lists as a devDependency, so ajv-draft-04 + ajv-formats are used directly.)
    """
    _require_app_manifest_package()
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 20 and run `npm install`", pytrace=False)
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")
    script = (
        "const fs = require('fs');"
        "const Ajv = require('ajv-draft-04'); const addFormats = require('ajv-formats');"
        "const [m, s] = process.argv.slice(1).map(p => JSON.parse(fs.readFileSync(p, 'utf8')));"
        "const ajv = new Ajv({allErrors: true, strictTypes: false});"
        "addFormats(ajv, ['uri', 'email', 'regex']);"
        "const validate = ajv.compile(s);"
        "console.log(JSON.stringify(validate(m) ? [] : validate.errors));"
    )
    proc = subprocess.run(
        [node, "-e", script, str(manifest_file), str(schema_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stderr}\n(run `npm install` in {REPO_ROOT}?)"
    assert json.loads(proc.stdout) == []


# --------------------------------------------------------------------------- content


def test_template_is_json_with_placeholders():
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    json.loads(text)
    assert {"{{APP_ID}}", "{{DOMAIN}}", "{{VERSION}}"} <= set(re.findall(r"\{\{[A-Z_]+\}\}", text))


def test_placeholders_substituted(manifest):
    assert "{{" not in json.dumps(manifest)
    assert manifest["id"] == APP_ID
    assert manifest["bots"][0]["botId"] == APP_ID
    assert DOMAIN in manifest["validDomains"]
    assert manifest["name"]["short"] == "License Desk"


def test_bot_entry(manifest):
    (bot,) = manifest["bots"]
    assert set(bot["scopes"]) == BOT_SCOPES
    assert bot["supportsFiles"] is False
    assert bot["isNotificationOnly"] is False


def test_command_lists(manifest, schema):
    (bot,) = manifest["bots"]
    max_commands = schema["properties"]["bots"]["items"]["properties"]["commandLists"]["items"]["properties"][
        "commands"
    ]["maxItems"]
    covered_scopes = set()
    for command_list in bot["commandLists"]:
        covered_scopes |= set(command_list["scopes"])
        titles = [c["title"] for c in command_list["commands"]]
        assert set(titles) <= BOT_COMMANDS, set(titles) - BOT_COMMANDS
        assert len(titles) == len(set(titles))
        assert len(titles) <= max_commands
        assert all(c["description"].strip() for c in command_list["commands"])
    assert covered_scopes == BOT_SCOPES
    all_titles = {c["title"] for cl in bot["commandLists"] for c in cl["commands"]}
    assert all_titles == BOT_COMMANDS


def test_domain_is_normalised():
    assert load_manifest(APP_ID, "LicenseDesk.Example.COM")["validDomains"] == [DOMAIN]


# --------------------------------------------------------------------------- icons


def _read_png(data: bytes) -> tuple[int, int, int, list[list[tuple[int, ...]]]]:
    """Minimal decoder for 8-bit, non-interlaced RGB/RGBA PNGs: (width, height, color_type, pixels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(tag + body) == crc, f"bad CRC in {tag!r}"
        chunks.append((tag, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, interlace) == (8, 0) and color_type in (2, 6)
    bpp = 3 if color_type == 2 else 4
    raw = zlib.decompress(b"".join(body for tag, body in chunks if tag == b"IDAT"))
    stride, prev, rows = width * bpp, bytearray(width * bpp), []
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append([tuple(line[x * bpp : (x + 1) * bpp]) for x in range(width)])
        prev = line
    return width, height, color_type, rows


def test_color_icon_is_192_full_colour():
    width, height, color_type, rows = _read_png(COLOR_ICON_PATH.read_bytes())
    assert (width, height) == (192, 192)
    pixels = {px for row in rows for px in row}
    if color_type == 6:
        assert all(px[3] == 255 for px in pixels), "color icon must be opaque"
    assert any(len(set(px[:3])) > 1 for px in pixels), "color icon is greyscale"
    assert len(pixels) > 2, "color icon has no symbol"


def test_outline_icon_is_32_white_on_transparent():
    width, height, color_type, rows = _read_png(OUTLINE_ICON_PATH.read_bytes())
    assert (width, height) == (32, 32)
    assert color_type == 6, "outline icon needs an alpha channel"
    pixels = [px for row in rows for px in row]
    visible = [px for px in pixels if px[3] > 0]
    assert all(px[:3] == (255, 255, 255) for px in visible), "outline icon must be white only"
    assert visible and len(visible) < len(pixels) // 2, "outline icon needs a transparent background"
    assert all(px[3] == 0 for px in rows[0] + rows[-1]), "outline icon border must be transparent"


# --------------------------------------------------------------------------- package


def test_build_package_zip(tmp_path, manifest, validator):
    out = build_package(APP_ID, DOMAIN, tmp_path / "dist" / "app.zip", version="1.2.3")
    assert out == tmp_path / "dist" / "app.zip"
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        assert sorted(zf.namelist()) == ["color.png", "manifest.json", "outline.png"]
        packaged = json.loads(zf.read("manifest.json").decode("utf-8"))
        assert zf.read("color.png") == COLOR_ICON_PATH.read_bytes()
        assert zf.read("outline.png") == OUTLINE_ICON_PATH.read_bytes()
    assert packaged["version"] == "1.2.3"
    assert packaged == load_manifest(APP_ID, DOMAIN, version="1.2.3")
    assert {packaged["icons"]["color"], packaged["icons"]["outline"]} == {"color.png", "outline.png"}
    assert _errors(validator, packaged) == []
    assert [p.name for p in out.parent.iterdir()] == ["app.zip"], "temporary file left behind"


def test_build_package_is_reproducible_and_overwrites(tmp_path):
    first = build_package(APP_ID, DOMAIN, tmp_path / "a.zip").read_bytes()
    again = build_package(APP_ID, DOMAIN, tmp_path / "a.zip").read_bytes()
    assert first == again


def test_build_package_into_directory(tmp_path):
    out = build_package(APP_ID, DOMAIN, tmp_path)
    assert out.parent == tmp_path and out.suffix == ".zip" and zipfile.is_zipfile(out)


@pytest.mark.parametrize(
    "app_id",
    [
        "",
        "not-a-guid",
        "3f2504e04f8941d39a0c0305e82c3301",
        "{3f2504e0-4f89-41d3-9a0c-0305e82c3301}",
        "urn:uuid:3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        "3f2504e0-4f89-41d3-9a0c-0305e82c3301\n",
        " 3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        "3f2504e0-4f89-41d3-9a0c-0305e82c330g",
        None,
    ],
)
def test_bad_app_id(tmp_path, app_id):
    with pytest.raises(ValueError, match="app_id must be a GUID"):
        load_manifest(app_id, DOMAIN)
    with pytest.raises(ValueError, match="app_id must be a GUID"):
        build_package(app_id, DOMAIN, tmp_path / "app.zip")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "domain",
    [
        "",
        "https://licensedesk.example.com",
        "licensedesk.example.com/api/messages",
        "licensedesk.example.com:443",
        "user@licensedesk.example.com",
        " licensedesk.example.com",
        "licensedesk.example.com\n",
        "*.example.com",
        "licensedesk..example.com",
        "licensedesk.example.com.",
        "-licensedesk.example.com",
        "license_desk.example.com",
        "10.0.0.1",
        "lïcensedesk.example.com",
        "a" * 64 + ".example.com",
        None,
    ],
)
def test_bad_domain(tmp_path, domain):
    with pytest.raises(ValueError, match="domain must be a bare host name"):
        load_manifest(APP_ID, domain)
    with pytest.raises(ValueError, match="domain must be a bare host name"):
        build_package(APP_ID, domain, tmp_path / "app.zip")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("version", ["", "1", "1.0", "1.0.0-beta", "v1.0.0", "01.0.0"])
def test_bad_version(tmp_path, version):
    with pytest.raises(ValueError, match="version must be"):
        build_package(APP_ID, DOMAIN, tmp_path / "app.zip", version=version)
