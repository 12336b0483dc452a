"""The dependency rules of DESIGN.md §3, read from the imports in the source files.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"carebot": ROOT / "carebot", "carebot.adapters": ROOT / "adapters"}
CORE_TYPES = ("config", "models", "exceptions", "clock", "wakeup")


def _is_module(name: str) -> bool:
    for prefix, folder in sorted(SOURCES.items(), key=lambda item: -len(item[0])):
        if name == prefix or name.startswith(prefix + "."):
            path = folder.joinpath(*name[len(prefix) :].split(".")[1:])
            return path.with_suffix(".py").exists() or (path / "__init__.py").exists()
    return False


def imported_modules(path: Path) -> set[str]:
    """The carebot modules (and packages) that the file at ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("carebot") and _is_module(name)}


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _offending(folder: Path, *, allowed: tuple[str, ...] = (), forbidden: tuple[str, ...] = ()):
    """``file: module`` for each import in ``folder`` that is not allowed or is forbidden."""
    return [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted(folder.rglob("*.py"))
        for name in sorted(imported_modules(path))
        if name not in ("carebot", "carebot.nlu")
        and ((allowed and not _within(name, allowed)) or _within(name, forbidden))
    ]


def test_nlu_imports_only_the_core_types_and_itself() -> None:
    allowed = ("carebot.nlu", *(f"carebot.{name}" for name in CORE_TYPES))
    bad = _offending(ROOT / "carebot" / "nlu", allowed=allowed)
    assert not bad, "carebot/nlu/ may import only the core types and itself:\n" + "\n".join(bad)


def test_adapters_do_not_reach_into_matching_triage_or_storage() -> None:
    forbidden = ("carebot.nlu", "carebot.triage", "carebot.inbox", "carebot.store")
    bad = _offending(ROOT / "adapters", forbidden=forbidden)
    assert not bad, "adapters only translate:\n" + "\n".join(bad)


def test_the_store_knows_nothing_of_channels_desks_or_nlu() -> None:
    forbidden = ("carebot.adapters", "carebot.desk", "carebot.nlu", "carebot.inbox")
    bad = _offending(ROOT / "carebot" / "store", forbidden=forbidden)
    assert not bad, "carebot/store/ must not import:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from carebot.nlu.intents import IntentSet", {"carebot.nlu.intents"}),
        ("def f():\n    from carebot.store import tables", {"carebot.store.tables"}),
        ("import carebot.adapters.telegram", {"carebot.adapters.telegram"}),
        ("from carebot.nlu import evaluation as ev", {"carebot.nlu.evaluation"}),
    ],
)
def test_every_kind_of_import_is_seen(tmp_path: Path, source: str, expected: set[str]) -> None:
    path = tmp_path / "sample.py"
    path.write_text(source + "\n")
    assert imported_modules(path) - {"carebot.nlu", "carebot.store"} == expected


def test_the_folder_listing_shows_the_architecture() -> None:
    modules = sorted(p.stem for p in (ROOT / "carebot").glob("*.py") if p.stem != "__init__")
    packages = {p.parent.name for p in (ROOT / "carebot").glob("*/__init__.py")}
    assert {"nlu", "store", "desk"} <= packages
    assert len(modules) <= 26, f"carebot/ holds {len(modules)} modules: {modules}"
