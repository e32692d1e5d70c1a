"""Ask your DataFrame: read-only tools over one DataFrame, without running model-written code.

``dataframe(df, name="sales")`` gives ``sales_columns``, ``sales_head``, ``sales_describe``,
``sales_value_counts``, ``sales_count`` and ``sales_aggregate``. A filter is parsed by a small
grammar, never evaluated as Python:

    filter     := or
    or         := and ("or" and)*
    and        := term ("and" term)*
    term       := "not" term | "(" or ")" | column op literal
    op         := == | != | < | <= | > | >=
    literal    := number | 'text' | "text" | true | false | null

A column is a bare name or a `back-quoted` one. Results are short text the model can read.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from .schema import Tool, as_tool, tool

__all__ = ["FilterError", "dataframe", "parse_filter"]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'[^']*'|\"[^\"]*\")|(?P<op>==|!=|<=|>=|<|>|=)"
    r"|(?P<paren>[()])|(?P<col>`[^`]+`)|(?P<word>[A-Za-z_][\w.]*))"
)
_MOST_ROWS = 20


class FilterError(ValueError):
    """A filter the grammar cannot read, or that names a column the table does not have."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"cannot read the filter at {text[pos : pos + 15]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, columns: list[str]) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.columns = columns

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("the filter ends too soon; write column op value, as in region == 'East'")
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Any:
        tree = self.or_()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()[1]!r}; join conditions with and / or")  # type: ignore[index]
        return tree

    def or_(self) -> Any:
        node = self.and_()
        while self.keyword("or"):
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Any:
        node = self.term()
        while self.keyword("and"):
            node = ("and", node, self.term())
        return node

    def term(self) -> Any:
        if self.keyword("not"):
            return ("not", self.term())
        kind, text = self.take()
        if (kind, text) == ("paren", "("):
            node = self.or_()
            if self.peek() != ("paren", ")"):
                raise FilterError("a '(' is not closed")
            self.i += 1
            return node
        if kind not in ("word", "col"):
            raise FilterError(f"expected a column name, got {text!r}")
        column = text.strip("`")
        if column not in self.columns:
            raise FilterError(f"no column {column!r}; the columns are {', '.join(self.columns)}")
        kind, op = self.take()
        if kind != "op":
            raise FilterError(f"expected a comparison after {column!r} (== != < <= > >=), got {op!r}")
        return ("cmp", column, "==" if op == "=" else op, self.literal())

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "str":
            return text[1:-1]
        if kind == "word" and text.lower() in ("true", "false", "null", "none"):
            return {"true": True, "false": False}.get(text.lower())
        raise FilterError(f"expected a value (a number, 'text', true, false or null), got {text!r}")


def parse_filter(text: str, columns: list[str]) -> Any:
    """The filter as a tree of ("and"|"or", a, b), ("not", a) and ("cmp", column, op, value)."""
    return _Parser(text, columns).parse()


def _mask(df: Any, tree: Any) -> Any:
    kind = tree[0]
    if kind == "and":
        return _mask(df, tree[1]) & _mask(df, tree[2])
    if kind == "or":
        return _mask(df, tree[1]) | _mask(df, tree[2])
    if kind == "not":
        return ~_mask(df, tree[1])
    _, column, op, value = tree
    col = df[column]
    if value is None:
        return col.isna() if op == "==" else col.notna()
    try:
        return {
            "==": col.__eq__,
            "!=": col.__ne__,
            "<": col.__lt__,
            "<=": col.__le__,
            ">": col.__gt__,
            ">=": col.__ge__,
        }[op](value)
    except TypeError:
        raise FilterError(f"{column} ({col.dtype}) cannot be compared with {value!r}") from None


def dataframe(df: Any, name: str = "df") -> list[Tool]:
    """Read-only tools over ``df`` for ``tools=``: its columns, head, describe, value counts, and a
    filtered count or aggregate."""
    if not callable(getattr(df, "select_dtypes", None)):
        raise TypeError(f"dataframe() takes a pandas DataFrame, not {type(df).__name__}")
    columns = [str(c) for c in df.columns]
    listed = ", ".join(columns[:30])
    table = f"the {name} table ({len(df)} rows; columns {listed})"
    grammar = "a filter such as region == 'East' and amount > 100 (empty: every row)"

    def rows(where: str) -> Any:
        return df if not where.strip() else df[_mask(df, parse_filter(where, columns))]

    @tool(name=f"{name}_columns", description=f"The columns and dtypes of {table}.")
    def columns_() -> str:
        return "\n".join(f"{c}: {t}" for c, t in df.dtypes.astype(str).items()) + f"\n({len(df)} rows)"

    @tool(name=f"{name}_head", description=f"The first rows of {table}.")
    def head(n: int = 5) -> str:
        return df.head(max(1, min(n, _MOST_ROWS))).to_string()

    @tool(name=f"{name}_describe", description=f"Summary statistics of {table}, or of one column.")
    def describe(column: str | None = None) -> str:
        if column is not None and column not in columns:
            raise FilterError(f"no column {column!r}; the columns are {listed}")
        return (df[column] if column else df).describe().to_string()

    @tool(name=f"{name}_value_counts", description=f"How often each value of a column occurs in {table}.")
    def value_counts(column: str, top: int = 10, where: str = "") -> str:
        """Count each value.

        Args:
            column: the column to count.
            top: how many of the most frequent values.
            where: only the rows matching this filter.
        """
        if column not in columns:
            raise FilterError(f"no column {column!r}; the columns are {listed}")
        return rows(where)[column].value_counts().head(max(1, min(top, 50))).to_string()

    @tool(name=f"{name}_count", description=f"Count the rows of {table} that match {grammar}.")
    def count(where: str = "") -> str:
        """Count rows.

        Args:
            where: the filter, as in region == 'East' and amount > 100.
        """
        return str(len(rows(where)))

    @tool(
        name=f"{name}_aggregate",
        description=f"The total (sum), mean, min, max, median or count of a column of {table}, "
        f"over {grammar}, optionally grouped by another column.",
    )
    def aggregate(
        column: str,
        func: Literal["sum", "mean", "min", "max", "median", "count", "nunique"] = "sum",
        where: str = "",
        by: str | None = None,
    ) -> str:
        """Aggregate a column.

        Args:
            column: the column to aggregate.
            func: the aggregate.
            where: the filter, as in region == 'East' and amount > 100.
            by: a column to group by.
        """
        for c in (column, by):
            if c is not None and c not in columns:
                raise FilterError(f"no column {c!r}; the columns are {listed}")
        picked = rows(where)
        if by:
            return picked.groupby(by)[column].agg(func).head(_MOST_ROWS * 2).to_string()
        return str(picked[column].agg(func))

    return [as_tool(f) for f in (columns_, head, describe, value_counts, count, aggregate)]
