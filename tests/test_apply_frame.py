"""apply's frame builder flattens answers exactly as ``pd.json_normalize(sep=".")`` does (it replaced
it for speed; live and batch apply both build their frames with it)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen_magics.structured.apply import answers_frame

keys = st.sampled_from(["name", "moons", "facts", "type", "a.b", "x"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3), st.lists(st.integers(), max_size=2)
)
values = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, max_size=3), max_leaves=6)
records = st.lists(st.dictionaries(keys, values, max_size=4), min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(records)
def test_answers_are_flattened_as_json_normalize_flattens_them(rows: list[dict[str, Any]]) -> None:
    index = pd.RangeIndex(len(rows))
    ours = answers_frame(index, rows, [pd.NA] * len(rows), None).drop(columns="_error")
    theirs = pd.json_normalize(rows, sep=".").convert_dtypes()
    theirs.index = index
    assert list(ours.columns) == list(theirs.columns)
    pd.testing.assert_frame_equal(ours, theirs, check_column_type=False)  # an empty one's inferred type
