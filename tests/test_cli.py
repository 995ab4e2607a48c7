"""``app.py``: the single entry point, with --help on each command."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import zipfile

import pytest

from core.config import ROOT

COMMANDS = ["serve", "migrate", "demo-data", "export-audit", "manifest", "roll-over"]


def run(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=dict(os.environ, **(env or {})),
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    out = run(command, "--help")
    assert out.returncode == 0, out.stderr
    assert f"usage: app.py {command}" in out.stdout


def test_top_level_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for command in COMMANDS:
        assert command in out.stdout


def test_demo_data_then_export_audit(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
    first = run("demo-data", env=env)
    assert first.returncode == 0 and "created" in first.stdout
    again = run("demo-data", env=env)
    assert again.returncode == 0 and "already present" in again.stdout
    out_file = tmp_path / "audit.csv"
    exported = run("export-audit", "--account", "1", "--out", str(out_file), env=env)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(out_file.read_text(encoding="utf-8"))))
    assert [r["action"] for r in rows] == ["demo.loaded"]
    missing = run("export-audit", "--account", "999", env=env)
    assert missing.returncode == 1 and "no account 999" in missing.stderr and "Traceback" not in missing.stderr


def test_manifest_command_writes_the_package(tmp_path):
    target = tmp_path / "pkg.zip"
    ok = run("manifest", "--app-id", "12345678-1234-1234-1234-123456789abc", "--domain", "bot.example.com",
             "--out", str(target))
    assert ok.returncode == 0, ok.stderr
    assert set(zipfile.ZipFile(target).namelist()) == {"manifest.json", "color.png", "outline.png"}
    bad = run("manifest", "--app-id", "not-a-guid", "--domain", "bot.example.com", "--out", str(target))
    assert bad.returncode == 2 and "GUID" in bad.stderr and "Traceback" not in bad.stderr


def test_bad_configuration_is_a_clear_message(tmp_path):
    out = run("migrate", env={"PAYMENTS": "bitcoin", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert out.returncode != 0
    assert "PAYMENTS" in out.stderr and "Traceback" not in out.stderr
