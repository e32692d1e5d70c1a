"""Ask your DataFrame: the read-only tools and the filter grammar, which is parsed, never evaluated."""

from __future__ import annotations

import pandas as pd
import pytest

from qwen_magics.tools import dataframe
from qwen_magics.tools.frames import FilterError, parse_filter

DF = pd.DataFrame({"region": ["East", "West", "East", "North"], "amount": [100, 250, 50, None]})


def tools() -> dict:  # type: ignore[type-arg]
    return {t.name: t for t in dataframe(DF, name="sales")}


def run(name: str, arguments: str) -> str:
    t = tools()[name]
    return t.function(**t.arguments(arguments))


def test_the_tools_are_named_after_the_table_and_describe_it() -> None:
    found = tools()
    assert list(found) == [
        f"sales_{n}" for n in ("columns", "head", "describe", "value_counts", "count", "aggregate")
    ]
    assert "region, amount" in found["sales_count"].description


def test_filtered_count_and_aggregate() -> None:
    assert run("sales_count", '{"where": "region == \'East\' and amount > 60"}') == "1"
    assert run("sales_count", '{"where": "(region == \'East\' or amount >= 250) and not amount < 60"}') == "2"
    assert run("sales_count", '{"where": "amount == null"}') == "1"
    assert (
        run("sales_aggregate", '{"column": "amount", "func": "sum", "where": "region != \'West\'"}')
        == "150.0"
    )
    assert "East     150.0" in run("sales_aggregate", '{"column": "amount", "by": "region"}')
    assert run("sales_columns", "{}").endswith("amount: float64\n(4 rows)")
    assert "East" in run("sales_value_counts", '{"column": "region"}')


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("__import__('os').system('x')", "cannot read the filter"),
        ("__import__ == 1", "no column '__import__'"),
        ("amount >", "ends too soon"),
        ("amount > 1 amount", "join conditions with and / or"),
        ("amount ~ 3", "cannot read the filter"),
        ("(amount > 1", "not closed"),
        ("amount > region", "expected a value"),
    ],
)
def test_a_filter_outside_the_grammar_is_refused_with_a_reason(text: str, words: str) -> None:
    with pytest.raises(FilterError, match=words.replace("(", r"\(")):
        parse_filter(text, ["region", "amount"])


def test_a_non_dataframe_is_refused() -> None:
    with pytest.raises(TypeError, match="takes a pandas DataFrame"):
        dataframe([1, 2])
