"""The layering docs/architecture.md describes, checked against the real imports.

Every ``import`` statement of the package counts: at module level, inside functions (lazy
imports) and under ``TYPE_CHECKING``. A lazy import is still a dependency, and an import
kept for type checkers still ties two modules together for a reader.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "guardrails_plugin"
DOC = ROOT / "docs" / "architecture.md"

# -- the layers ------------------------------------------------------------------------------
#
# A unit is a top-level module (``guard``) or a subpackage (``policy``); "" is the package's
# ``__init__``. Each unit may import itself and the units listed here, nothing else.

VOCABULARY = {"_root_error", "_errors", "_decision", "_events", "_approvals", "_context", "_tokens"}
ALLOWED: dict[str, set[str]] = {
    # the vocabulary every layer speaks
    "_root_error": set(),
    "_decision": {"_root_error"},
    "_errors": {"_root_error", "_decision"},  # names every error, the decision ones too
    "_events": set(),
    "_approvals": {"_decision", "_events"},
    "_context": set(),
    "_tokens": set(),
    "_say": set(),  # the command line's one-line errors
    # building blocks
    "scopes": {"_errors"},
    "store": {"_errors"},
    "policy": {"_errors", "_decision", "_events", "_tokens", "scopes"},
    "_grants": {"_errors", "policy", "scopes"},
    "audit": {"_errors", "_decision", "_events", "_say"},
    "rollback": {"_errors", "_events", "store"},
    "controls": {"_errors", "_decision", "_grants", "store", "audit"},
    "cascade": {"_decision", "_events", "controls"},
    "approvers": {"_errors", "_approvals"},
    "listeners": {"_decision", "_events"},
}
CORE = set(ALLOWED)
ALLOWED["guard"] = CORE
ENGINE = CORE | {"guard"}
ALLOWED[""] = ENGINE
ADAPTERS = {
    "langchain",
    "langgraph",
    "otel",
    "dashboard",
    "cli",
    "demo",
    "testing",
    "replay",
    "baselines",
    "shadow",
    "openai",
    "agents_sdk",  # the OpenAI Agents SDK adapter
    "simulate",
    "verify",
}
ALLOWED.update(
    {
        "langgraph": ENGINE,
        "langchain": ENGINE | {"langgraph"},  # GuardMiddleware shares the LangGraph gate
        "otel": VOCABULARY | {""},  # the package's __version__
        "dashboard": ENGINE | {"langgraph"},  # answers resume waiting graphs
        "demo": ENGINE | {"langchain", "testing"},
        "cli": ENGINE | {"dashboard", "demo", "replay", "baselines", "simulate", "verify"},
        "replay": ENGINE,  # re-decides recorded traffic with the engine
        "baselines": ENGINE | {"replay"},  # learns from replayed traffic; a cascade signal
        "shadow": ENGINE,  # a shadow guard following a live one
        "testing": set(),
        "openai": ENGINE,  # the openai SDK's tool loop
        "agents_sdk": ENGINE,
        # a population of agents run through the engine, or through LangGraph graphs
        "simulate": ENGINE | {"replay", "baselines", "langgraph"},
        "verify": ENGINE,  # encodes policies for z3; replays counterexamples through the engine
    }
)

# Third-party packages only adapters may import (the engine never sees a framework object).
FRAMEWORKS = {
    "langchain": {"langchain", "langgraph", "demo", "testing"},
    "langchain_core": {"langchain", "langgraph", "demo", "testing", "simulate"},
    "langgraph": {"langchain", "langgraph", "demo", "testing", "replay", "simulate"},
    "starlette": {"dashboard"},
    "uvicorn": {"dashboard"},
    "opentelemetry": {"otel"},
    "openai": {"openai"},
    "jsonschema": {"openai", "agents_sdk"},
    "agents": {"agents_sdk"},  # openai-agents
    "ray": {"simulate"},  # the optional ray extra: shards of a simulation as Ray tasks
    "z3": {"verify"},  # z3-solver
}


LONG = 600


# -- reading the package ---------------------------------------------------------------------


@cache
def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package ``__init__``)."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        found[".".join(parts)] = (path, is_pkg)
    return found


def _absolute(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imported(module: str) -> Iterator[str]:
    """Every name ``module`` imports, absolute: ``a.b`` for ``import a.b``, and for
    ``from a import b`` either ``a.b`` (when it is a module of this package) or ``a``."""
    path, is_pkg = modules()[module]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_pkg, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in modules() else base


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module -> the modules of this package it imports."""
    edges: dict[str, frozenset[str]] = {}
    for module in modules():
        deps = set()
        for name in _imported(module):
            parts = name.split(".")
            while parts and ".".join(parts) not in modules():
                parts.pop()
            target = ".".join(parts)
            if target and target != module:
                deps.add(target)
        edges[module] = frozenset(deps)
    return edges


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles() -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


# -- the rules -------------------------------------------------------------------------------


def test_the_graph_sees_imports() -> None:
    # a reader that saw nothing would pass every rule below
    edges = graph()
    assert "guardrails_plugin._decision" in edges["guardrails_plugin._errors"]
    assert "guardrails_plugin.langgraph._gate" in edges["guardrails_plugin.langchain"]
    assert "guardrails_plugin.scopes._base" in edges["guardrails_plugin.scopes.paths"]
    assert "guardrails_plugin.audit" in edges["guardrails_plugin.guard"]  # under TYPE_CHECKING


def test_every_unit_has_a_place_in_the_layers() -> None:
    units = {unit(m) for m in modules()}
    assert units - set(ALLOWED) == set(), "add the new unit to ALLOWED and docs/architecture.md"
    assert set(ALLOWED) - units == set(), "a unit is gone: remove it from ALLOWED"


def test_each_unit_imports_only_the_layers_below_it() -> None:
    wrong = sorted(
        f"{m} imports {d}"
        for m, deps in graph().items()
        for d in deps
        if unit(d) != unit(m) and unit(d) not in ALLOWED[unit(m)]
    )
    assert wrong == []


def test_the_engine_never_imports_an_adapter() -> None:
    wrong = sorted(
        f"{m} imports {d}"
        for m, deps in graph().items()
        if unit(m) in ENGINE | {""}
        for d in deps
        if unit(d) in ADAPTERS
    )
    assert wrong == []


def test_scopes_and_stores_import_nothing_from_the_engine() -> None:
    wrong = sorted(
        f"{m} imports {d}"
        for m, deps in graph().items()
        if unit(m) in ("scopes", "store")
        for d in deps
        if unit(d) not in (unit(m), "_errors")
    )
    assert wrong == []


def test_frameworks_are_imported_by_adapters_only() -> None:
    wrong = sorted(
        f"{m} imports {name}"
        for m in modules()
        for name in _imported(m)
        if name.split(".")[0] in FRAMEWORKS and unit(m) not in FRAMEWORKS[name.split(".")[0]]
    )
    assert wrong == []


def test_no_import_cycles() -> None:
    assert cycles() == []


def _long_files() -> list[str]:
    return sorted(
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if len(p.read_text().splitlines()) > LONG
    )


@pytest.mark.parametrize("path", _long_files())
def test_a_long_file_says_at_its_top_why(path: str) -> None:
    source = (ROOT / path).read_text()
    doc = ast.get_docstring(ast.parse(source)) or ""
    head = "\n".join(source.splitlines()[:12])
    # a generated table says so on its first line (and names its generator): reason enough
    generated = re.search(r"\bgenerated\b", doc.partition("\n")[0]) is not None
    stated = re.search(r"^Why this file is long: \S", doc, re.M) is not None
    assert generated or stated, f"{path}: no reason stated"
    assert generated or "Why this file is long:" in head, f"{path}: the reason is not at the top"


# -- the document ----------------------------------------------------------------------------


@cache
def doc_text() -> str:
    return DOC.read_text()


def test_the_readme_links_the_architecture_document() -> None:
    assert "](docs/architecture.md)" in (ROOT / "README.md").read_text()


def test_every_path_the_document_names_exists() -> None:
    named = set(
        re.findall(
            r"(?<![\w/.])((?:guardrails_plugin|tests|benchmarks|cookbook|scripts|docs|"
            r"integrations)/[\w./-]*\w)",
            doc_text(),
        )
    )
    assert len(named) > 40  # the code map names every module
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == []


def test_every_unit_is_in_the_code_map() -> None:
    for u in ALLOWED:
        path = "guardrails_plugin/__init__.py" if u == "" else f"guardrails_plugin/{u}"
        assert path in doc_text(), f"docs/architecture.md does not mention {path}"


@cache
def definitions() -> tuple[frozenset[str], frozenset[str]]:
    """Names defined in the package: classes, functions and constants (``names``), and
    ``Class.member`` for every method, field and class constant (``members``)."""
    names: set[str] = set()
    members: set[str] = set()
    for path, _ in modules().values():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names.add(node.name)
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        members.add(f"{node.name}.{item.name}")
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        members.add(f"{node.name}.{item.target.id}")
                    elif isinstance(item, ast.Assign):
                        for t in item.targets:
                            if isinstance(t, ast.Name):
                                members.add(f"{node.name}.{t.id}")
                for sub in ast.walk(node):  # attributes set on self in its methods
                    if isinstance(sub, ast.Assign):
                        for t in sub.targets:
                            if (
                                isinstance(t, ast.Attribute)
                                and isinstance(t.value, ast.Name)
                                and t.value.id == "self"
                            ):
                                members.add(f"{node.name}.{t.attr}")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return frozenset(names), frozenset(members)


def test_every_flow_and_member_the_document_names_exists() -> None:
    names, members = definitions()
    quoted = re.findall(r"`([A-Za-z_][\w.]*)(?:\(\))?`", doc_text())
    flows = {q for q in quoted if re.fullmatch(r"_?[a-z_]+_flow", q)}
    dotted = {q for q in quoted if re.fullmatch(r"[A-Z]\w*\.\w+", q) and q.split(".")[0] in names}
    assert len(flows) > 5
    assert len(dotted) > 10
    missing = sorted(q for q in flows if q not in names)
    missing += sorted(q for q in dotted if q not in members)
    assert missing == []


def test_every_identifier_the_document_quotes_occurs_in_the_code() -> None:
    # names of other libraries (``Command``, ``create_agent``) occur in the package's imports
    # and docstrings; a function renamed or removed occurs nowhere
    source = "\n".join(p.read_text() for p, _ in modules().values())
    words = set(re.findall(r"\w+", source + Path(__file__).read_text()))
    quoted = set(re.findall(r"`([A-Za-z_]\w*)(?:\(\))?`", doc_text()))
    assert len(quoted) > 50
    assert sorted(quoted - words) == []
