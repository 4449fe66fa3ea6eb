"""The package's folders show the pipeline: no import circle, data flows one way, every
subpackage says what its stage takes and gives, and README's layout section is the tree."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pnp_core"

#: the order data flows in; a module may import from its own folder and from lower layers only
#: (top-level modules of layer 0 and 3 may import each other: they form no circle, checked below)
LAYERS = {
    "errors": 0, "formats": 0, "registry": 0, "progress": 0, "io": 0, "params": 0,
    "run_names": 0,
    "synth": 1, "features": 2, "config": 3, "spec": 3, "metric": 4, "training": 5,
    "evaluation": 6, "matching": 7, "cli": 9, "commands": 9, "__main__": 9,
}
STAGES = ("synth", "features", "metric", "training", "evaluation", "matching")


def module_files() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the pnp_core modules it imports anywhere in its body (lazy imports too)."""
    mods = module_files()
    graph = {}
    for name, f in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                subs = {f"{node.module}.{a.name}" for a in node.names} & mods.keys()
                # ``from pkg import submodule`` depends on the submodule, not on all of pkg
                deps |= subs if len(subs) == len(node.names) else subs | {node.module}
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def layer(module: str) -> int:
    parts = module.split(".")
    return -1 if len(parts) == 1 else LAYERS[parts[1]]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_module_has_a_layer():
    unknown = {m.split(".")[1] for m in module_files() if "." in m} - LAYERS.keys()
    assert not unknown, f"add {sorted(unknown)} to LAYERS (and README's layout section)"


def test_no_import_circle_and_imports_flow_one_way():
    graph = import_graph()
    assert cycles(graph) == []
    wrong = []
    for m, deps in graph.items():
        for d in deps:
            same_folder = m.split(".")[:2] == d.split(".")[:2]
            if layer(d) > layer(m) or (layer(d) == layer(m) and not same_folder
                                       and (m.count(".") > 1 or d.count(".") > 1)):
                wrong.append(f"{m} -> {d}")
    assert not wrong, "imports against the data flow:\n" + "\n".join(sorted(wrong))


@pytest.mark.parametrize("module", ["pnp_core", "pnp_core.config", "pnp_core.spec",
                                    "pnp_core.synth.datasets", "pnp_core.metric.jacobian"])
def test_import_order_in_a_fresh_interpreter(module):
    """Importing a module loads only modules of its own or lower layers (and loads at all:
    a circle through module-level imports would fail here)."""
    code = (f"import sys, {module}\n"
            "print(' '.join(m for m in sys.modules if m == 'pnp_core' or m.startswith('pnp_core.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.split()
    assert module in out
    higher = [m for m in out if layer(m) > layer(module)]
    assert not higher, f"import {module} loads later stages: {higher}"
    if module == "pnp_core":
        assert out == ["pnp_core"], "the package's __init__ imports nothing (fast `import pnp_core`)"


def test_every_subpackage_has_a_docstring():
    for init in PKG.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.relative_to(ROOT)} has no docstring"
    for stage in ("metric", "training", "evaluation", "matching"):
        doc = ast.get_docstring(ast.parse((PKG / stage / "__init__.py").read_text()))
        assert "Takes" in doc and "gives" in doc, f"pnp_core/{stage}: say what it takes and gives"


def readme_layout() -> dict[str, set[str]]:
    """Folder ('' for the top) → the names README's layout block lists in it."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout"):]
    block = re.search(r"```\n(pnp_core/\n.*?)```", section, re.S).group(1)
    listed: dict[str, set[str]] = {"": set()}
    folder = ""
    for line in block.splitlines()[1:]:
        code = line.strip()
        if not code:
            continue
        if code.startswith("#"):  # a comment line continues the line above
            tokens = re.findall(r"[\w.]+/|[\w.]+\.(?:py|yaml)", code)
        else:
            first = code.split()[0]
            folder = first[:-1] if first.endswith("/") and first != "commands/" else ""
            tokens = re.findall(r"[\w.]+/|[\w.]+\.(?:py|yaml)", code.split("#")[0])
            if folder:
                tokens = tokens[1:]
                listed[""].add(first)
            tokens += re.findall(r"[\w.]+/|[\w.]+\.(?:py|yaml)", code.partition("#")[2])
        listed.setdefault(folder, set()).update(tokens)
    return listed


def actual_layout(folder: Path) -> set[str]:
    names = {p.name for p in folder.iterdir() if p.is_file() and p.suffix in (".py", ".yaml")}
    names |= {p.name + "/" for p in folder.iterdir() if (p / "__init__.py").exists()}
    return names - {"__init__.py"}


def test_readme_layout_section_matches_the_tree():
    listed = readme_layout()
    assert listed[""] == actual_layout(PKG)
    for stage in STAGES:
        assert listed.get(stage) == actual_layout(PKG / stage), f"README layout: pnp_core/{stage}/"
