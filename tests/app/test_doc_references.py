"""The README, the docs and the code's docstrings point at things that exist.

Checked without a database: every relative Markdown link names a file of the
repository and, with a ``#fragment``, a heading of that file (GitHub's anchor
rules); every module path (``orders/forwarding.py``) and every dotted name of
ours (``products.bulk.write_products``) written in backticks in the docs, or
in double backticks in a docstring or comment, names a module that exists and,
past the module, an attribute it has; and only route modules cite
docs/contract.md, other code states the rule itself.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = (
    "core",
    "auth",
    "users",
    "products",
    "orders",
    "dashboard",
    "audit",
    "idempotency",
    "events",
    "webhooks",
    "devtools",
    "demo",
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`")
MODULE_PATH = re.compile(rf"^(?:backend_app/)?((?:{'|'.join(PACKAGES)})/[\w/]+\.py)$")
DOTTED = re.compile(rf"^(?:backend_app\.)?((?:{'|'.join(PACKAGES)})(?:\.\w+)+)$")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            base = _anchor(line.lstrip("#"))
            anchor, n = base, 1
            while anchor in found:
                anchor, n = f"{base}-{n}", n + 1
            found.add(anchor)
    return found


def _resolves(dotted: str) -> bool:
    """Whether ``backend_app.<dotted>`` is a module, or a module's attribute (a class's attribute too)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module("backend_app." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_names_an_existing_file_and_heading(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, fragment = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif fragment and path.suffix == ".md" and fragment not in _anchors(path):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == [], broken


def _code_references(text: str, pattern: re.Pattern[str]) -> set[str]:
    return {m.group(1).rstrip(".,;:()") for m in pattern.finditer(text)}


def _missing(refs: set[str]) -> list[str]:
    """The module paths and dotted names among ``refs`` that name nothing of ours."""
    missing = []
    for ref in sorted(r.removesuffix("()") for r in refs):
        path, dotted = MODULE_PATH.match(ref), DOTTED.match(ref)
        if (path and not _exists(path.group(1))) or (dotted and not _resolves(dotted.group(1))):
            missing.append(ref)
    return missing


def _exists(relative: str) -> bool:
    """A module path of ours: ``tests/<path>`` for a test module, ``backend_app/<path>`` otherwise."""
    base = "tests" if Path(relative).name.startswith(("test_", "conftest")) else "backend_app"
    return (ROOT / base / relative).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_module_the_docs_name_exists(doc: Path) -> None:
    assert _missing(_code_references(doc.read_text(encoding="utf-8"), CODE)) == []


SOURCES = sorted([*(ROOT / "backend_app").rglob("*.py"), *(ROOT / "config").rglob("*.py")])
DOUBLE = re.compile(r"``([^`\n]+)``")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_the_code_names_exists(source: Path) -> None:
    assert _missing(_code_references(source.read_text(encoding="utf-8"), DOUBLE)) == []


def test_the_development_layout_names_every_package_and_module() -> None:
    """docs/development.md's layout lists every package of ``backend_app`` and every module in it."""
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    layout = text.split("## Layout", 1)[1].split("```", 2)[1]
    missing = []
    for package in sorted(p for p in (ROOT / "backend_app").iterdir() if (p / "__init__.py").exists()):
        if f"{package.name}/" not in layout:
            missing.append(f"{package.name}/")
        for module in sorted(package.glob("*.py")):
            if module.name != "__init__.py" and module.name not in layout:
                missing.append(f"{package.name}/{module.name}")
    assert missing == [], missing


TEST_REF = re.compile(r"(tests/[\w/]+\.py)(?:::([\w:]+))?")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_test_the_docs_cite_exists(doc: Path) -> None:
    """``tests/<file>.py`` and ``tests/<file>.py::<test>`` cited in the docs name a test module and a test in it."""
    missing = []
    for path, name in set(TEST_REF.findall(doc.read_text(encoding="utf-8"))):
        module = ROOT / path
        if not module.exists():
            missing.append(path)
        elif name and not re.search(rf"(def|class) {re.escape(name.split('::')[-1])}\b", module.read_text("utf-8")):
            missing.append(f"{path}::{name}")
    assert missing == [], missing


CONTRACT_CITATION = re.compile(r"contract\.md|contract §")


def test_only_route_modules_cite_the_contract() -> None:
    """docs/contract.md is cited on routes only (``router.py``, ``users_router.py``); other code states the rule."""
    citing = []
    for source in SOURCES:
        relative = source.relative_to(ROOT).as_posix()
        if source.name.endswith("router.py"):
            continue
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if CONTRACT_CITATION.search(line):
                citing.append(f"{relative}:{number}: {line.strip()}")
    assert citing == [], "\n".join(citing)
