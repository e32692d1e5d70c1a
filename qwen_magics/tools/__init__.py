"""Notebook functions as tools: their schemas (``schema.py``) and read-only tools over a DataFrame
(``frames.py``, which reads the DataFrame it is given and imports no pandas). The loop that calls
them is the client's (``api/toolloop.py``)."""

from __future__ import annotations

from .frames import dataframe
from .schema import Tool, ToolArgumentError, as_tool, as_tools, tool

__all__ = ["as_tool", "as_tools", "dataframe", "Tool", "tool", "ToolArgumentError"]
