"""Dollar signs in the Markdown we emit: prices, footers and what a user typed show as ``$``, never
as TeX. JupyterLab reads ``$...$`` in a Markdown output's source and MathJax reads it again in the
rendered page; ``visible_math`` finds what either pass would pair. The answer itself is Markdown as
the model wrote it, so its own ``$x^2$`` stays math."""

from __future__ import annotations

import re

import pytest

from qwen_magics.api.render import DOLLAR, escape_text
from qwen_magics.emulator import Emulator

from .outputs import run

_CODE = re.compile(r"^```.*?^```$|`+[^`\n]*`+|^(?:> ?)*(?: {4}|\t).*?$", re.MULTILINE | re.DOTALL)


def visible_math(markdown: str) -> list[str]:
    """Text a Markdown front end would typeset: ``$...$`` outside code (both passes leave code alone),
    in the source or in the text of one element of the page (a ``<span>`` of its own holds a ``$``
    apart)."""
    source = _CODE.sub("", markdown)
    in_source = re.findall(r"\$[^$]+\$", source)
    in_page = [
        m
        for piece in re.split(r"<[^>]+>", source.replace("&#36;", "$"))
        for m in re.findall(r"\$[^$]+\$", piece)
    ]
    return in_source + in_page


def markdown(cap) -> str:  # type: ignore[no-untyped-def]
    return "\n\n".join(o.data["text/markdown"] for o in cap.outputs if "text/markdown" in o.data)


def test_models_table_prices_are_dollars_not_math(ip, qwen_env: Emulator) -> None:
    md = markdown(run(ip, "%qwen models"))
    assert visible_math(md) == [] and "$" not in md
    assert "| qwq-plus | 131,072 | 8,192 | always thinks | — | $0.80 | $2.40 | $2.40 |" in md.replace(
        DOLLAR, "$"
    )


def test_footer_cost_does_not_pair_with_a_dollar_in_the_answer(ip, qwen_env: Emulator) -> None:
    cap = run(ip, "%%qwen --no-thinking\nIs a $5 coffee worth it")
    md = markdown(cap)
    assert "a $5 coffee" in md  # the answer, as the model wrote it
    footer = md.rsplit("<sub>", 1)[1]
    assert "≈" + DOLLAR + "0.0" in footer and "$" not in footer
    assert visible_math(md) == []


def test_history_shows_what_was_typed_with_its_dollars(ip, qwen_env: Emulator) -> None:
    run(ip, "%%qwen --no-thinking -s 'Budgets run from $5 to $10.'\nIs $5 or $10 better? Try `echo $HOME`.")
    md = markdown(run(ip, "%qwen history"))
    system, you = (line for line in md.splitlines() if line.startswith(("> **system:**", "> **you:**")))
    assert visible_math(system) == [] and visible_math(you) == []
    assert "`echo $HOME`" in you  # code is shown as written
    assert you.replace(DOLLAR, "$") == "> **you:** Is $5 or $10 better? Try `echo $HOME`."


def test_config_shows_a_default_with_dollars_as_typed(ip, qwen_env: Emulator) -> None:
    run(ip, "%qwen config system = 'Prices from $5 to $10.'")
    md = markdown(run(ip, "%qwen config"))
    assert visible_math(md) == [] and "Prices from $5 to $10." in md.replace(DOLLAR, "$")


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("see `a $b` here $1", "`a $b`"),
        ("```sh\necho $HOME $PATH\n```\nthen $2 and $3", "```sh\necho $HOME $PATH\n```"),
        ("text\n\n    indented $x $y\n\nmore $1 $2", "    indented $x $y"),
    ],
)
def test_escaping_markdown_leaves_code_as_written(text: str, kept: str) -> None:
    escaped = escape_text(text, markdown=True)
    assert kept in escaped and visible_math(escaped) == []
    assert escaped.replace(DOLLAR, "$") == text


def test_escaping_text_escapes_html_too() -> None:
    assert escape_text("<b>$5</b> & $6") == f"&lt;b&gt;{DOLLAR}5&lt;/b&gt; &amp; {DOLLAR}6"
