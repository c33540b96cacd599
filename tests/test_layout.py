"""The architecture, read from the code: three layers whose imports only point down.

eval/           scripts: the core's public API only (the names in dsmlab.__all__)
dsmlab/train/   model making: uses the core
dsmlab/         the inference core: imports neither of the above
"""

import ast
from pathlib import Path

import pytest

import dsmlab

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for package in ("dsmlab", "eval"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def imports(name: str) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every import statement in a module, function-level
    and TYPE_CHECKING ones included."""
    path = MODULES[name]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names]))
    return found


def internal_edges(name: str) -> set[str]:
    """The project modules `name` imports (a name imported from a package may be a module)."""
    edges = set()
    for module, names in imports(name):
        for target in [module] + [f"{module}.{n}" for n in names]:
            if target in MODULES and target != name:
                edges.add(target)
    return edges


def layer(name: str) -> int:
    if name.startswith("eval"):
        return 2
    return 1 if name.startswith("dsmlab.train") else 0


def test_imports_only_point_down():
    upward = [
        f"{name} -> {target}"
        for name in MODULES
        for target in internal_edges(name)
        if layer(target) > layer(name)
    ]
    assert upward == []


def test_no_circle_of_modules():
    """Package __init__ files re-export their modules; any other cycle is a circle."""
    graph = {
        n: {t for t in internal_edges(n) if MODULES[t].name != "__init__.py"}
        for n in MODULES
        if MODULES[n].name != "__init__.py"
    }
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in graph[node]:
            if state.get(target) == 1:
                cycles.append(trail[trail.index(target) :] + [node, target])
            elif target not in state:
                visit(target, trail + [node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
    assert cycles == []


# public modules imported by name: data (kept out of `import dsmlab` for the weight of
# `datasets`) and conversations (what VAD heads are fit on and scored on)
PUBLIC_MODULES = ("dsmlab.data", "dsmlab.conversations")


def test_eval_uses_only_the_public_api_of_dsmlab():
    public = set(dsmlab.__all__)
    private = []
    for name in (n for n in MODULES if n.startswith("eval")):
        for module, names in imports(name):
            allowed = module in PUBLIC_MODULES or (module == "dsmlab" and set(names) <= public)
            if module.startswith("dsmlab") and not allowed:
                private.append(f"{name}: from {module} import {', '.join(names)}")
        tree = ast.parse(MODULES[name].read_text())
        for node in ast.walk(tree):
            is_dsmlab = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if is_dsmlab and node.value.id == "dsmlab" and node.attr not in public:
                private.append(f"{name}: dsmlab.{node.attr}")
    assert private == []


def test_every_public_name_exists():
    assert [n for n in dsmlab.__all__ if not hasattr(dsmlab, n)] == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_small_and_say_what_they_are_for(name):
    text = MODULES[name].read_text()
    assert len(text.splitlines()) <= MAX_LINES
    if MODULES[name].name != "__init__.py" or text.strip():
        assert ast.get_docstring(ast.parse(text)), f"{name} has no module docstring"


def test_frame_and_token_constants_are_defined_once():
    """24000 Hz, 1920 samples, 12.5 frames/s and the padding ids live in audio.py/timing.py."""
    literal = {"24000", "24_000", "1920", "12.5"}
    offenders = []
    for name, path in MODULES.items():
        if name in ("dsmlab.audio", "dsmlab.timing"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
                if ast.unparse(node) in literal:
                    offenders.append(f"{name}:{node.lineno} {ast.unparse(node)}")
    assert offenders == []
