"""Boundaries between the package's modules, checked on the source rather than hoped for."""

from __future__ import annotations

import ast
from pathlib import Path

import qwen_magics

PACKAGE = Path(qwen_magics.__file__).parent
RESPONSE = PACKAGE / "api" / "response.py"
# the state a Response keeps to itself; the rest of the package reads the public properties
LISTED = {
    "_text",
    "_reasoning",
    "_usage",
    "_elapsed",
    "_source",
    "_events",
    "_finish_reason",
    "_incomplete",
    "_error",
    "_closer",
    "_sync_iter",
    "_loop",
}


def response_private_state() -> set[str]:
    """Every private attribute Response sets on itself, as response.py defines them today."""
    tree = ast.parse(RESPONSE.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Response")
    return {
        target.attr
        for node in ast.walk(cls)
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == "self"
        and target.attr.startswith("_")
    }


def touches(source: str, names: set[str]) -> list[tuple[int, str]]:
    """Where ``source`` reaches one of ``names`` on anything but ``self``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in names:
            if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                found.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in names
        ):
            found.append((node.lineno, str(node.args[1].value)))
    return sorted(found)


def test_the_check_sees_a_response_touched_from_outside() -> None:
    source = (
        "def f(self, r, cell):\n"
        "    self._text = []\n"  # its own attribute: fine
        "    r._text.append('x')\n"
        "    cell.response._usage = None\n"
        "    return getattr(r, '_loop')\n"
    )
    assert touches(source, LISTED) == [(3, "_text"), (4, "_usage"), (5, "_loop")]
    assert response_private_state() >= LISTED  # the list names what Response really keeps


def test_only_the_response_module_touches_a_responses_private_state() -> None:
    names = LISTED | response_private_state()  # a new private attribute is covered too
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == RESPONSE:
            continue
        for line, name in touches(path.read_text(encoding="utf-8"), names):
            offences.append(f"{path.relative_to(PACKAGE.parent)}:{line} .{name}")
    assert offences == [], "use Response's public API (or add one in api/response.py):\n" + "\n".join(
        offences
    )
