"""Notebook functions as tools: their schemas (``schema.py``) and read-only tools over a DataFrame
(``dataframe.py``). The loop that calls them is the client's (``api/toolloop.py``)."""

from __future__ import annotations

from .schema import Tool, ToolArgumentError, as_tool, as_tools, tool

__all__ = ["as_tool", "as_tools", "dataframe", "Tool", "tool", "ToolArgumentError"]


def __getattr__(name: str) -> object:
    if name == "dataframe":
        from .dataframe import dataframe

        return dataframe
    raise AttributeError(f"module 'qwen_magics.tools' has no attribute {name!r}")
