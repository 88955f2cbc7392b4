"""The package's layers: every import inside ``reidbox`` goes down, never up or sideways.

One table (mirrored in docs/architecture.md, which this test also checks): each room (a
top-level module or package of ``reidbox``) sits on a floor and may import only rooms on lower
floors, plus itself. Lazy imports inside functions count too, so a circle cannot hide in one.
"""

import ast
import os
import re

import reidbox

PACKAGE = os.path.dirname(reidbox.__file__)
DOC = os.path.join(os.path.dirname(PACKAGE), "docs", "architecture.md")

# floor -> rooms (a room imports only rooms of lower floors)
FLOORS = [
    ["errors"],  # imports nothing of reidbox
    ["registry", "retrieval"],  # registries; distances, indexes, protocols, ranked lists
    ["utils"],  # checkpoints, run folders, logging, tables
    ["config"],  # defaults, yml layering, ranges
    ["data", "evaluation"],  # siblings: neither imports the other
    ["modeling", "export"],  # models / TorchScript and ONNX files of evaluation's FeatureModel
    ["visualization", "api", "cli"],  # draw / extract features / command-line plumbing
    ["engine", "gallery"],  # tasks, runner, trainer, hooks, chain, compare / saved gallery index
    ["commands"],  # the tools' bodies (tools/*.py, the reidbox command) and the demos
    ["__init__"],
]
FLOOR = {room: i for i, rooms in enumerate(FLOORS) for room in rooms}


def _room(path: str) -> str:
    rel = os.path.relpath(path, PACKAGE)
    first = rel.split(os.sep)[0]
    return os.path.splitext(first)[0]


def _imports(path: str):
    """(line, imported reidbox room) of every import in ``path``."""
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))
    parts = rel[:-3].split(os.sep)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = (
                [mod] if node.module or not node.level else [f"{mod}.{a.name}" for a in node.names]
            )
        else:
            continue
        for name in names:
            bits = name.split(".")
            if bits[0] == "reidbox" and len(bits) > 1:
                yield node.lineno, bits[1]


def _modules():
    for root, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                yield os.path.join(root, f)


def test_every_room_has_a_floor():
    rooms = {_room(p) for p in _modules()}
    assert rooms <= set(FLOOR), f"give these a floor in FLOORS: {sorted(rooms - set(FLOOR))}"


def test_imports_only_go_down():
    bad = []
    for path in _modules():
        here = _room(path)
        for line, there in _imports(path):
            if there != here and FLOOR.get(there, -1) >= FLOOR[here]:
                bad.append(
                    f"{os.path.relpath(path, PACKAGE)}:{line} ({here}, floor "
                    f"{FLOOR[here]}) imports {there} (floor {FLOOR.get(there)})"
                )
    assert not bad, "imports that go up or sideways:\n" + "\n".join(bad)


def test_the_architecture_doc_lists_every_room_on_its_floor():
    text = open(DOC, encoding="utf-8").read()
    for room, floor in FLOOR.items():
        if room == "__init__":
            continue
        pattern = rf"\|\s*{floor}\s*\|\s*`reidbox\.{room}`"
        assert re.search(pattern, text), (
            f"docs/architecture.md: no row '| {floor} | `reidbox.{room}`' in the layer table"
        )


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def _module_edges(path: str, known: set):
    """Modules of the package that ``path`` imports (``from pkg import mod`` names the module
    where one exists; type-checking and lazy imports count too)."""
    here = _module_name(path)
    package = here.split(".") if path.endswith("__init__.py") else here.split(".")[:-1]
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != here:
                yield t


def test_no_circle_between_modules():
    """No two modules import each other, directly or around a loop, inside a room too (the
    room test above sees only imports between rooms): a hook module once typed its trainer
    by importing it while the trainer imported the hooks."""
    paths = list(_modules())
    known = {_module_name(p) for p in paths}
    graph = {_module_name(p): set(_module_edges(p, known)) for p in paths}
    # a package imports its own submodules to re-export them: only the way back is a circle
    for name, edges in graph.items():
        graph[name] = {t for t in edges if not name.startswith(t + ".")}
    circles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not circles, "modules that import each other:\n" + "\n".join(circles)
