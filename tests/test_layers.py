"""The layer contract lint-imports cannot see: background.py is a top-level module, not a
package, so the import graph only sees it as a name that bot/ and web/ import. It must import
the standard library only, or it would carry an import between layers past the contracts."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_top_levels(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports (relative imports as "." )."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." if node.level else (node.module or "").split(".")[0])
    return names


def test_background_imports_the_standard_library_only():
    assert imported_top_levels(ROOT / "background.py") <= set(sys.stdlib_module_names)


def test_the_check_sees_an_import_of_ours(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nif True:\n    from bot.transport import BotTransport\nfrom . import x\n")
    assert imported_top_levels(module) - set(sys.stdlib_module_names) == {"bot", "."}
