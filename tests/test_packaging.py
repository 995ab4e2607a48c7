"""What an installed License Desk holds: every package of the tree and the top-level modules the
commands import (an explicit ``packages`` list forgets a new subpackage silently otherwise)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"tests", "bench", "migrations", "e2e", "node_modules", "var", "dist", "build"}


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_of_the_tree_is_installed():
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in ROOT.glob("*/**/__init__.py")
             if not (set(p.relative_to(ROOT).parts) & SKIP) and not p.relative_to(ROOT).parts[0].startswith(".")}
    assert found, "no package found: the test looks in the wrong place"
    assert sorted(found - set(_setuptools()["packages"])) == []


def test_the_top_level_modules_the_commands_import_are_installed():
    imported = {"app", "bootstrap", "background"}
    assert all((ROOT / f"{m}.py").exists() for m in imported)
    assert imported <= set(_setuptools()["py-modules"])
