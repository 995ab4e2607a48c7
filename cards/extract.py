"""The Python extraction method of babel.cfg (``[cards.extract.python: ...]``): Babel's own reads
tokens, so it misses ``T(reader)("key")`` (the translator built and called at once, as dialogs
do) and glues ``t("a" if c else "b")`` into one msgid. This one reads the syntax tree: a call of
a keyword (``t(...)``, ``x.plural(...)``, ``Message(...)``) or of a freshly built ``T(...)``,
each string argument as it is, both branches of a conditional one; an f-string is not a msgid
(the code marks the keys it computes with ``N_``)."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import write_po


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "T":
        return "t"  # T(reader)("key")
    return None


def _choices(arg: ast.expr) -> list[str | None]:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.IfExp):
        return _choices(arg.body) + _choices(arg.orelse)
    return [None]


def python(fileobj, keywords, comment_tags, options):
    """Babel's extraction-method interface: (lineno, funcname, messages, comments) per call;
    Babel applies each keyword's spec (``plural:1,2``) to ``messages``."""
    tree = ast.parse(fileobj.read().decode(options.get("encoding", "utf-8")))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name not in keywords or not node.args:
            continue
        for messages in itertools.product(*(_choices(a) for a in node.args[:3])):
            if messages[0] is not None:
                yield node.lineno, name, messages if len(messages) > 1 else messages[0], []


# ------------------------------------------------------------------------------ the .pot

ROOT = Path(__file__).resolve().parent.parent
POT = ROOT / "cards" / "locale" / "messages.pot"
# the lookups whose string arguments are msgids (Babel keyword specs: argument positions)
KEYWORDS = {"t": None, "plural": (1, 2), "N_": None, "NP_": (1, 2), "Message": None, "counted": (1, 2),
            "_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2)}


def _files(root: Path, pattern: str) -> list[Path]:
    """The files of a babel.cfg pattern ("core/**.py": any depth; "app.py": that one)."""
    if "**" not in pattern:
        return [root / pattern] if (root / pattern).is_file() else []
    folder, _, tail = pattern.partition("**")
    return sorted((root / folder).glob(f"**/*{tail}"))


def extract(root: Path = ROOT) -> Catalog:
    """The template catalog extracted from the code with babel.cfg's methods and KEYWORDS: what
    ``python -m cards.extract`` writes to cards/locale/messages.pot."""
    with (root / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    catalog = Catalog(project="License Desk", version="1", copyright_holder="License Desk", charset="utf-8",
                      fuzzy=False, header_comment="# The strings of License Desk, extracted by python -m cards.extract"
                                                  " (babel.cfg).\n# A symbolic msgid's msgid_plural names the param "
                                                  "that holds its count (cards/catalogs.py).")
    for pattern, method in method_map:
        for path in _files(root, pattern):
            rel = path.relative_to(root).as_posix()
            for lineno, message, comments, context in extract_from_file(
                    method, path, KEYWORDS, options=options_map.get(pattern, {}), strip_comment_tags=True):
                catalog.add(message, None, [(rel, lineno)], auto_comments=comments, context=context)
    return catalog


def write_pot(catalog: Catalog, path: Path = POT) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, catalog, width=100, no_location=True, omit_header=False, sort_output=True)


if __name__ == "__main__":
    write_pot(extract())
    print(f"wrote {POT.relative_to(ROOT)}")
