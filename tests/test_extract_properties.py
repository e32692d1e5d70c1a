"""Property tests: any JSON value embedded in prose or fences is found, and by the path expected."""

from __future__ import annotations

import json

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qwen_magics.structured.jsonextract import count_records, extract

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
containers = values.filter(lambda v: isinstance(v, (dict, list)))
# prose a model writes around its JSON: words and punctuation, without brackets, backticks or tags
prose = st.text(alphabet=st.sampled_from(list("abcdefghij KLMNOP 0123456789 .,;:!?'\"-\n")), max_size=60)
dumps = st.sampled_from(
    [
        lambda v: json.dumps(v),
        lambda v: json.dumps(v, indent=2),
        lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")),
    ]
)
fence_labels = st.sampled_from(["json", "JSON", "", "javascript"])

SETTINGS = settings(max_examples=150, deadline=None)


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@SETTINGS
@given(values, dumps)
def test_a_whole_answer_that_is_json_is_read_as_is(value: object, dump) -> None:  # type: ignore[no-untyped-def]
    found = extract(dump(value))
    assert found.value == value
    assert found.path == "json"


@SETTINGS
@given(containers, dumps, prose, prose)
def test_an_object_or_array_in_prose_is_found(value: object, dump, before: str, after: str) -> None:  # type: ignore[no-untyped-def]
    text = f"{before} {dump(value)} {after}"
    assume(not is_json(text))  # prose like '"' on both sides makes the whole text one JSON string
    found = extract(text)
    assert found.value == value


@SETTINGS
@given(values, dumps, prose, prose, fence_labels)
def test_any_value_in_a_fence_is_found(value: object, dump, before: str, after: str, label: str) -> None:  # type: ignore[no-untyped-def]
    found = extract(f"{before}\n```{label}\n{dump(value)}\n```\n{after}")
    assert found.value == value
    assert found.path in ("fenced", "json")  # "json" when the prose around it is empty


@SETTINGS
@given(st.lists(st.dictionaries(st.text(max_size=6), scalars, max_size=3), max_size=6), st.booleans())
def test_records_are_counted_as_they_close(records: list[dict], wrapped: bool) -> None:
    text = json.dumps({"items": records} if wrapped else records)
    assert count_records(text) == len(records)
    # a record still open at the end of the text is not counted yet
    if records:
        cut = text.rindex("}") if not wrapped else text.rindex("}", 0, len(text) - 1)
        assert count_records(text[:cut]) == len(records) - 1
