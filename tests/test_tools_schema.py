"""A notebook function's JSON Schema, from its signature, type hints and docstring; its refusals."""

from __future__ import annotations

import enum
from typing import Literal

import pydantic
import pytest

import qwen_magics
from qwen_magics.errors import ParameterError
from qwen_magics.tools import ToolArgumentError, as_tool


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Place(pydantic.BaseModel):
    city: str
    country: str | None = None


def get_weather(city: str, unit: Unit = Unit.C, days: int = 1, mode: Literal["now", "week"] = "now") -> str:
    """Get the current weather for a city.

    Args:
        city: The city's name,
            in English.
        unit (Unit): Celsius or Fahrenheit.

    Returns:
        A sentence.
    """
    return f"{city}: rain ({unit.value}, {days}, {mode})"


def test_signature_hints_and_google_docstring_make_the_schema() -> None:
    spec = as_tool(get_weather).spec["function"]
    assert spec["name"] == "get_weather" and spec["description"] == "Get the current weather for a city."
    params = spec["parameters"]
    assert params["required"] == ["city"] and params["additionalProperties"] is False
    assert params["properties"]["city"] == {"type": "string", "description": "The city's name, in English."}
    assert params["properties"]["unit"] == {
        "enum": ["celsius", "fahrenheit"],
        "type": "string",
        "description": "Celsius or Fahrenheit.",
        "default": "celsius",
    }
    assert params["properties"]["days"] == {"type": "integer", "default": 1}
    assert params["properties"]["mode"]["enum"] == ["now", "week"]


def test_numpy_docstring_optional_list_dict_and_pydantic() -> None:
    def plan(
        stops: list[str], where: Place | None, budget: float, notes: dict[str, int] | None = None
    ) -> str:
        """Plan a trip.

        Parameters
        ----------
        stops : list of str
            Where to stop.
        where : Place
            The start.
        """
        return ""

    params = as_tool(plan).spec["function"]["parameters"]
    assert params["properties"]["stops"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "Where to stop.",
    }
    assert params["properties"]["where"]["anyOf"][0]["properties"]["city"]["type"] == "string"
    assert params["properties"]["where"]["description"] == "The start."
    assert params["properties"]["budget"] == {"type": "number"}
    assert params["properties"]["notes"]["anyOf"][0] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    args = as_tool(plan).arguments('{"stops": ["a"], "where": {"city": "Oslo"}, "budget": 3}')
    assert isinstance(args["where"], Place) and args["where"].city == "Oslo" and args["budget"] == 3.0


def test_decorator_overrides_name_and_description() -> None:
    @qwen_magics.tool(name="weather_now", description="Today's weather")
    def w(city: str) -> str:
        """Ignored summary."""
        return city

    spec = as_tool(w).spec["function"]
    assert (spec["name"], spec["description"]) == ("weather_now", "Today's weather")
    assert w("Oslo") == "Oslo"  # still the function


def test_arguments_are_checked_and_converted() -> None:
    t = as_tool(get_weather)
    assert t.arguments('{"city": "Oslo", "unit": "fahrenheit"}') == {"city": "Oslo", "unit": Unit.F}
    with pytest.raises(ToolArgumentError, match="city: expected string, got integer 3"):
        t.arguments('{"city": 3}')
    with pytest.raises(ToolArgumentError, match="missing required field 'city'"):
        t.arguments("{}")
    with pytest.raises(ToolArgumentError, match="unexpected field 'town'"):
        t.arguments('{"city": "x", "town": "y"}')
    with pytest.raises(ToolArgumentError, match="not valid JSON"):
        t.arguments('{"city": ')
    with pytest.raises(ToolArgumentError, match="is not one of"):
        t.arguments('{"city": "x", "unit": "kelvin"}')


def f_args(*names: str) -> None: ...
def f_untyped(x) -> None: ...  # type: ignore[no-untyped-def]
def f_union(x: int | str) -> None: ...
def f_class(x: complex) -> None: ...
def f_keys(x: dict[int, str]) -> None: ...


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (f_args, "parameter 'names' of f_args: *args and **kwargs cannot be described"),
        (f_untyped, "parameter 'x' of f_untyped has no type hint; annotate it"),
        (f_union, "parameter 'x' of f_union: a union of 2 types"),
        (f_class, "parameter 'x' of f_class: type complex cannot be described"),
        (f_keys, "JSON objects have string keys"),
        (lambda x: x, "a lambda has no name"),
        ("get_weather", "is not a function"),
    ],
)
def test_a_function_that_cannot_be_described_is_refused_naming_the_parameter(fn: object, words: str) -> None:
    with pytest.raises(ParameterError) as info:
        as_tool(fn)
    assert info.value.param == "tools"
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_tool_named_search_is_refused_before_sending() -> None:
    def search(q: str) -> str:
        return q

    with pytest.raises(ParameterError, match="refuses a tool named 'search'"):
        as_tool(search)
