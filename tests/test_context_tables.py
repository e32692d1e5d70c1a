"""DataFrames and Series in a prompt: the whole table, as Markdown, CSV or JSON records, within the limit."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator
from qwen_magics.templating import TemplateError, fill

from .test_magics_prompt import sent_prompt


def sales(n: int) -> pd.DataFrame:
    return pd.DataFrame({"region": [f"r{i}" for i in range(n)], "units": list(range(n))})


def test_a_500_row_dataframe_arrives_whole(ip, qwen_env: Emulator) -> None:
    ip.user_ns["df"] = sales(500)
    sent = sent_prompt(ip, qwen_env, "Summarise this table:\n{df}")
    lines = sent.splitlines()
    assert lines[1:3] == ["| region | units |", "|---|---|"]
    assert len(lines) == 1 + 2 + 500  # no "..." in the middle: every row
    assert "| r0 | 0 |" in lines and "| r499 | 499 |" in lines
    assert "..." not in sent


def test_csv_and_json_records_by_format_spec(ip, qwen_env: Emulator) -> None:
    ip.user_ns["df"] = sales(3)
    assert sent_prompt(ip, qwen_env, "{df:csv}") == "region,units\nr0,0\nr1,1\nr2,2"
    records = json.loads(sent_prompt(ip, qwen_env, "{df:json}"))
    assert records == [{"region": f"r{i}", "units": i} for i in range(3)]


def test_an_index_that_is_not_a_plain_range_is_kept() -> None:
    df = pd.DataFrame({"units": [5, 7]}, index=pd.Index(["north", "south"], name="region"))
    assert fill("{df}", {"df": df}) == "| region | units |\n|---|---|\n| north | 5 |\n| south | 7 |"
    assert fill("{df:csv}", {"df": df}) == "region,units\nnorth,5\nsouth,7"
    plain = pd.DataFrame({"units": [5, 7]})
    assert fill("{df:csv}", {"df": plain}) == "units\n5\n7"
    shifted = pd.DataFrame({"units": [5, 7]}, index=[10, 11])  # a filtered frame keeps its labels
    assert fill("{df:csv}", {"df": shifted}) == "index,units\n10,5\n11,7"


def test_a_series_is_a_table_and_cells_cannot_break_it() -> None:
    s = pd.Series([1.5, None], index=["a", "b"], name="price")
    assert fill("{s}", {"s": s}) == "| index | price |\n|---|---|\n| a | 1.5 |\n| b |  |"
    df = pd.DataFrame({"note": ["a|b", "two\nlines"]})
    assert fill("{df}", {"df": df}).splitlines()[2:] == ["| a\\|b |", "| two<br>lines |"]


def test_repr_is_still_there_for_who_wants_pandas_display() -> None:
    df = sales(100)
    assert fill("{df!s}", {"df": df}) == str(df)


def test_an_unknown_table_format_says_which_there_are() -> None:
    with pytest.raises(TemplateError, match=r"markdown .*csv or json; got the format 'xml'"):
        fill("{df:xml}", {"df": sales(2)})


def test_a_table_over_the_limit_says_how_many_rows_fit_and_sends_nothing(ip, qwen_env: Emulator) -> None:
    ip.user_ns["big"] = sales(5000)
    ip.run_line_magic("qwen", "config max_prompt_chars=2000")
    qwen_env.reset()
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic("qwen", "", "Summarise {big}")
    message = str(err.value)
    fit = int(message.split(" rows fit")[0].rsplit(" ", 1)[1])
    assert "5,000 rows" in message
    assert f"{{big.head({fit})}}" in message and f"{{big.sample({fit})}}" in message
    assert "nothing was sent" in message and "\n" not in message
    assert qwen_env.chat_requests == []
    # the number is right: that many rows fit, one more does not
    ip.user_ns["part"] = sales(5000).head(fit)
    assert len(sent_prompt(ip, qwen_env, "Summarise {part}")) <= 2000
    ip.user_ns["part"] = sales(5000).head(fit + 1)
    with pytest.raises(UsageError, match="rows fit"):
        ip.run_cell_magic("qwen", "", "Summarise {part}")


def test_a_one_line_prompt_sends_the_whole_table_too(ip, qwen_env: Emulator) -> None:
    ip.user_ns.update(df=sales(500), m="qwen-flash")
    qwen_env.reset()
    with capture_output():
        ip.run_cell("%qwen -m $m --no-thinking Summarise {df}")  # IPython's own expansion would send str(df)
    (request,) = qwen_env.chat_requests
    sent = request.body["messages"][-1]["content"]
    assert sent.startswith("Summarise | region | units |") and "| r250 | 250 |" in sent and "..." not in sent
    assert request.body["model"] == "qwen-flash"  # the options are still expanded as IPython does
