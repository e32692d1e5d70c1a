"""Every symbol the package writes into an output has a shape in Debian's Chromium with its default
fonts: a character no installed font covers is drawn as the empty box of a missing glyph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import qwen_magics
from tests.jupyterlab import chromium

PACKAGE = Path(qwen_magics.__file__).parent
# JupyterLab's --jp-ui-font-family and --jp-content-font-family
LAB_FONTS = (
    "system-ui, -apple-system, blinkmacsystemfont, 'Segoe UI', helvetica, arial, sans-serif, "
    "'Apple Color Emoji', 'Segoe UI Emoji', 'Segoe UI Symbol'"
)
# draws each character as Lab would and keeps those drawn exactly like a private-use code point,
# which no font here covers: the missing-glyph box
MISSING = """([chars, fonts]) => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 48;
  const g = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (ch) => {
    g.clearRect(0, 0, 48, 48);
    g.font = '28px ' + fonts;
    g.fillText(ch, 6, 36);
    return Array.from(g.getImageData(0, 0, 48, 48).data).join(',');
  };
  const box = draw('\\uE000');
  return chars.filter((ch) => draw(ch) === box);
}"""


def output_symbols() -> dict[str, list[str]]:
    """The non-ASCII characters in the package's string literals (docstrings and the emulator,
    whose text stands for the model's, left out), and the modules that write each one."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "emulator" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                first = node.body[0] if node.body else None
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    docstrings.add(id(first.value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for ch in node.value:
                    if ord(ch) > 127:
                        found.setdefault(ch, set()).add(str(path.relative_to(PACKAGE)))
    return {ch: sorted(where) for ch, where in found.items()}


@pytest.mark.browser
def test_every_symbol_in_outputs_renders_in_chromium_with_default_fonts() -> None:
    symbols = output_symbols()
    assert "·" in symbols and "⏹" not in symbols  # the footer's separator is found; the stop sign is gone
    with chromium() as browser:
        page = browser.new_page()
        page.set_content("<html><body></body></html>")
        assert page.evaluate(MISSING, [["\u23f9", "a"], LAB_FONTS]) == ["\u23f9"]  # the check sees a box
        boxes = page.evaluate(MISSING, [list(symbols), LAB_FONTS])
    assert boxes == [], {ch: symbols[ch] for ch in boxes}
