"""``ltbench list`` without importing torch: read the registrations from the source files.

Registration happens through ``@METHODS.register("name")`` decorators; this module finds those
decorators with ``ast`` (no import, ~20 ms) so listing stays well under a second. A test checks that
the static view equals the real registries, so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

SOURCES = {"METHODS": "ltbench.methods", "DATASETS": "ltbench.data", "BACKBONES": "ltbench.models"}


def package_dirs(package: str) -> list[Path]:
    """Where a package's sources are, found without executing it (``ltbench.methods`` is the repository's
    ``methods/`` folder in a checkout and ``ltbench/methods`` in an installed wheel)."""
    spec = importlib.util.find_spec(package)
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


TITLES = {"METHODS": "methods", "DATASETS": "datasets", "BACKBONES": "backbones"}


def _class_constant(node: ast.ClassDef, attr: str) -> str | None:
    """A string constant assigned to ``attr`` in a class body (e.g. ``display_name = "LDAM-DRW"``)."""
    for stmt in node.body:
        if (
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == attr for t in stmt.targets)
            and isinstance(stmt.value, ast.Constant)
        ):
            return str(stmt.value.value)
    return None


def _registrations(path: Path, registry: str) -> dict[str, dict[str, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: dict[str, dict[str, str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        for deco in node.decorator_list:
            if (
                isinstance(deco, ast.Call)
                and isinstance(deco.func, ast.Attribute)
                and deco.func.attr == "register"
                and isinstance(deco.func.value, ast.Name)
                and deco.func.value.id == registry
                and deco.args
                and isinstance(deco.args[0], ast.Constant)
            ):
                doc = (ast.get_docstring(node) or "").strip()
                name = str(deco.args[0].value)
                display = _class_constant(node, "display_name") if isinstance(node, ast.ClassDef) else None
                found[name] = {"description": doc.splitlines()[0] if doc else "", "display_name": display or name}
    return found


def _all(registry: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for folder in package_dirs(SOURCES[registry]):
        for path in sorted(folder.rglob("*.py")):
            out.update(_registrations(path, registry))
    return dict(sorted(out.items()))


def static_entries(registry: str) -> dict[str, str]:
    """name -> one-line description for METHODS, DATASETS or BACKBONES, from the sources."""
    return {name: e["description"] for name, e in _all(registry).items()}


def display_names() -> dict[str, str]:
    """Method key -> the name tables and figures print (``display_name``; the key when a method sets none)."""
    return {name: e["display_name"] for name, e in _all("METHODS").items()}


def _fold(name: str) -> str:
    """What two spellings of a method name must share: case, separators and the Greek tau do not count."""
    name = name.lower().replace("τ", "tau")
    return "".join(ch for ch in name if ch.isalnum())


@functools.lru_cache(maxsize=1)
def _method_spellings() -> dict[str, str]:
    """Folded key or display name -> key; a spelling two methods share maps to neither (never a silent guess)."""
    found: dict[str, set[str]] = {}
    for key, display in display_names().items():
        for spelling in (key, display):
            found.setdefault(_fold(spelling), set()).add(key)
    return {spelling: keys.pop() for spelling, keys in found.items() if len(keys) == 1}


def canonical_method(name: str) -> str:
    """The registry key of a method named as tables print it (``LDAM-DRW`` -> ``ldam_drw``, ``cRT`` -> ``crt``,
    case-insensitive), so a name copied from a table works as ``--method``. Keys come back unchanged without
    reading the sources; a name that matches nothing is returned as given, for the registry's error (which
    lists the known methods)."""
    if name.isidentifier() and name == name.lower():
        return name
    return _method_spellings().get(_fold(name), name)


def print_catalog(kind: str | None = None) -> None:
    for registry, title in TITLES.items():
        if kind and kind != title:
            continue
        entries = static_entries(registry)
        print(f"{title}:")
        width = max((len(n) for n in entries), default=0)
        for name, desc in entries.items():
            print(f"  {name:<{width}}  {desc}")
        print()
