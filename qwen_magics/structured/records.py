"""DataFrames out of JSON answers: where the records are, flattened into columns in the schema's types.

``to_dataframe`` finds the records in an answer (a list of objects, an object whose one list of
objects holds them, or a single object as one row), flattens nested objects into dotted columns and
applies the schema's types. pandas is imported here on first use, never with ``qwen_magics``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..api.response import Response
from .jsonextract import extract
from .schema import Schema, parse_schema

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Records", "find_records", "schema_of", "to_dataframe", "typed", "user_namespace"]


@dataclass(frozen=True)
class Records:
    rows: list[Any]
    tabular: bool  # a list of records, not one object shown as one row


def find_records(data: Any) -> Records | None:
    """Where the records are: a list; the one list-of-objects value of an object ({"items": [...]});
    else the object itself as one row. None for a scalar."""
    if isinstance(data, list):
        return Records(data, all(isinstance(r, dict) for r in data) and bool(data))
    if not isinstance(data, dict):
        return None
    lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
    if len(lists) > 1:
        raise ValueError(
            f"the object holds several lists of records ({', '.join(map(repr, lists))}); "
            f"choose one, e.g. to_dataframe(data[{lists[0]!r}])"
        )
    if lists:
        return Records(data[lists[0]], True)
    if len(data) == 1 and next(iter(data.values())) == []:
        return Records([], True)
    return Records([data], False)


def to_dataframe(x: Any, *, schema: Any = None) -> pd.DataFrame:
    """A DataFrame from a structured Response, JSON text, a dict or a list.

    Nested objects become dotted columns (``facts.type``); the schema's types become nullable
    dtypes (Int64, Float64, boolean, string). A Response from ``ask_json`` brings its own schema.
    """
    import pandas as pd

    sch = parse_schema(schema, user_namespace()) if schema is not None else None
    if isinstance(x, Response):
        sch = sch or schema_of(x)
        data = x.data if x.data is not None else extract(x.text).value
    elif isinstance(x, str):
        data = extract(x).value
    else:
        data = x
    found = find_records(data)
    if found is None:
        raise TypeError(
            f"{type(data).__name__} is not tabular: to_dataframe needs a list of objects, "
            "an object holding one, or an object"
        )
    rows = found.rows
    if rows and not all(isinstance(r, dict) for r in rows):
        frame = pd.DataFrame({"value": rows})
    else:
        frame = pd.json_normalize(rows, sep=".") if rows else pd.DataFrame()
    return typed(frame, sch)


def typed(frame: pd.DataFrame, schema: Schema | None) -> pd.DataFrame:
    """The schema's columns first (added when missing), in the schema's types."""
    if schema is None:
        return frame
    dtypes = schema.dtypes()
    frame = frame.reindex(columns=[*dtypes, *(c for c in frame.columns if c not in dtypes)])
    for col, dtype in dtypes.items():
        if dtype is not None:
            try:
                frame[col] = frame[col].astype(dtype)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                pass  # a value that does not fit stays as it came
    return frame


def schema_of(response: Response) -> Schema | None:
    """The schema ``ask_json`` validated this Response against (None without one)."""
    schema = response.schema
    return schema if isinstance(schema, Schema) else None


def user_namespace() -> Mapping[str, Any] | None:
    """The notebook's variables, so schema="Planet" finds a model defined in a cell."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None
    shell = get_ipython()
    return shell.user_ns if shell is not None else None
