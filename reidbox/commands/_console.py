"""The ``reidbox`` console command: ``reidbox <command> [flags] [KEY VALUE ...]``.

Every module of ``reidbox.commands`` (``reidbox/commands/<name>.py`` with ``main(argv)``) is a
command, found when the command runs, so a new module needs no entry here. Its name is the
module's ``COMMAND`` string when it sets one (``train_net`` -> ``train``), else the module name
with dashes; the module name (``train_net``, ``train-net``) works too. Each command's
``--help`` is its tool's help, with ``tools/<name>.py`` shown as ``reidbox <command>``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import pkgutil
import sys
from typing import List, NamedTuple, Optional, Sequence

from ..cli import run_main, set_command_names
from ..errors import UsageError

PACKAGE = "reidbox.commands"


class Command(NamedTuple):
    name: str  # what the user types
    module: str  # reidbox.commands.<module>
    summary: str  # the first line of the module's docstring


def _read_module(path: str):
    """(COMMAND string or None, docstring) of a module's source, without importing it (a
    command's imports pull in torch: ``reidbox --help`` stays fast)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    name = None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "COMMAND" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            name = node.value.value
    return name, ast.get_docstring(tree) or ""


def commands() -> List[Command]:
    """Every command of ``reidbox.commands``, sorted by name."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = []
    for info in pkgutil.iter_modules([here]):
        if info.name.startswith("_") or info.ispkg:
            continue
        name, doc = _read_module(os.path.join(here, info.name + ".py"))
        first = doc.strip().splitlines()[0] if doc.strip() else ""
        summary = first.split(": ``")[0].split(": ")[0].rstrip(".")  # before the example
        found.append(Command(name or info.name.replace("_", "-"), info.name, summary))
    return sorted(found)


def _lookup(word: str, table: Sequence[Command]) -> Optional[Command]:
    for c in table:
        if word in (c.name, c.module, c.module.replace("_", "-")):
            return c
    return None


def _usage(table: Sequence[Command]) -> str:
    width = max(len(c.name) for c in table)
    lines = [
        "usage: reidbox <command> [flags] [KEY VALUE ...]",
        "",
        "Person re-identification with Progressive Transfer Learning. Each command runs the "
        "same code as",
        "tools/<module>.py; `reidbox <command> --help` shows its flags and an example.",
        "",
        "commands:",
    ]
    for c in table:
        lines.append(f"  {c.name.ljust(width)}  {c.summary}")
    lines += ["", "example: reidbox train --config-file configs/demo/ptl.yml --output-dir out"]
    return "\n".join(lines)


def dispatch(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``reidbox argv``: find the command and call its ``main`` with the rest."""
    argv = list(sys.argv[1:] if argv is None else argv)
    table = commands()
    if not argv or argv[0] in ("-h", "--help", "help"):
        if len(argv) > 1 and argv[0] == "help":  # reidbox help train == reidbox train --help
            return dispatch([argv[1], "--help"])
        print(_usage(table))
        return 0 if argv else 2
    command = _lookup(argv[0], table)
    if command is None:
        names = ", ".join(c.name for c in table)
        raise UsageError(f"reidbox: no command {argv[0]!r}; the commands are: {names}")
    set_command_names(
        f"reidbox {command.name}",
        {f"tools/{c.module}.py": f"reidbox {c.name}" for c in table},
    )
    module = importlib.import_module(f"{PACKAGE}.{command.module}")
    return module.main(argv[1:])


def main() -> None:
    """The console-script entry point (setup.py): one-line errors and exit status 2."""
    run_main(dispatch)
