"""Adaptive Card checks for tests.

Cards are validated by ``tests/tools/validate_cards.mjs`` with the official ``adaptivecards``
npm parser (targeting schema 1.5), made strict: unknown element/action types, unknown
properties (whether the parser ignores them or the 1.5 schema does not declare them),
wrongly-typed or invalid values, missing required properties, missing/duplicate input ids,
unsupported versions... are all reported. Teams' ``msteams`` (root card) and
``choices.data`` (Input.ChoiceSet) extensions are allowed.

Node and ``node_modules`` (``npm install`` at the repository root) are required: if they
are missing the checks fail loudly instead of being skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
VALIDATOR_SCRIPT = Path(__file__).resolve().parent / "tools" / "validate_cards.mjs"
ADAPTIVECARDS_BUNDLE = REPO_ROOT / "node_modules" / "adaptivecards" / "dist" / "adaptivecards.min.js"
DEFAULT_TIMEOUT_S = 60.0
TEAMS_CARD_LIMIT = 28 * 1024  # Teams rejects bot messages over ~28 KB

_SETUP_HINT = "run `npm install` in the repository root (needs Node.js 18+ on PATH)"


class CardValidatorUnavailable(RuntimeError):
    """Node or the adaptivecards npm package is missing, or the validator failed to run."""


def _node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise CardValidatorUnavailable(f"`node` not found on PATH: {_SETUP_HINT}")
    if not ADAPTIVECARDS_BUNDLE.is_file():
        raise CardValidatorUnavailable(
            f"the adaptivecards npm package is not installed ({ADAPTIVECARDS_BUNDLE} missing): {_SETUP_HINT}"
        )
    return node


def _to_json(cards: Sequence[Any]) -> str:
    try:
        return json.dumps(list(cards), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        for index, card in enumerate(cards):
            try:
                json.dumps(card, allow_nan=False)
            except (TypeError, ValueError) as card_exc:
                raise TypeError(f"card {index} is not plain JSON: {card_exc}") from card_exc
        raise TypeError(f"cards are not plain JSON: {exc}") from exc


def validate_cards(
    cards: Sequence[Mapping[str, Any]], *, timeout: float = DEFAULT_TIMEOUT_S
) -> list[list[str]]:
    """Validate a batch of cards (one Node process); return one list of error strings per card."""
    if isinstance(cards, Mapping):
        raise TypeError("validate_cards() takes a list of cards, not a single card")
    cards = list(cards)
    if not cards:
        return []
    node = _node_executable()
    payload = _to_json(cards)
    try:
        proc = subprocess.run(
            [node, str(VALIDATOR_SCRIPT)],
            input=payload,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            cwd=REPO_ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CardValidatorUnavailable(f"card validator timed out after {timeout}s") from exc
    if proc.returncode != 0:
        raise CardValidatorUnavailable(
            f"card validator exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}"
            + ("" if ADAPTIVECARDS_BUNDLE.is_file() else f"; {_SETUP_HINT}")
        )
    try:
        results = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise CardValidatorUnavailable(f"card validator printed no JSON: {proc.stdout[:500]!r}") from exc
    if not isinstance(results, list) or len(results) != len(cards):
        raise CardValidatorUnavailable(f"card validator returned {results!r} for {len(cards)} cards")
    return [[str(error) for error in errors] for errors in results]


def assert_valid_cards(cards: Sequence[Mapping[str, Any]], *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Raise AssertionError listing every invalid card (by index) with its errors."""
    results = validate_cards(cards, timeout=timeout)
    failures = [(index, errors) for index, errors in enumerate(results) if errors]
    if failures:
        lines = [f"{len(failures)} of {len(results)} Adaptive Card(s) invalid:"]
        for index, errors in failures:
            lines.append(f"card {index}:")
            lines.extend(f"  - {error}" for error in errors)
        raise AssertionError("\n".join(lines))


def card_size(card: Mapping[str, Any]) -> int:
    """Bytes of the card as compact UTF-8 JSON (what goes on the wire, give or take the envelope)."""
    return len(json.dumps(card, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def assert_card_budget(card: Mapping[str, Any], limit: int = TEAMS_CARD_LIMIT) -> None:
    """Raise AssertionError if the card's compact JSON exceeds ``limit`` bytes."""
    size = card_size(card)
    if size > limit:
        raise AssertionError(f"Adaptive Card is {size} bytes, over the {limit}-byte budget by {size - limit}")
