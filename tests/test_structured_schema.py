"""Schemas: the short form, JSON Schema dicts, Pydantic models, validation messages, clear refusals."""

from __future__ import annotations

import pydantic
import pytest

from qwen_magics.errors import ParameterError
from qwen_magics.structured.schema import SchemaMismatch, parse_schema


class Facts(pydantic.BaseModel):
    type: str


class Planet(pydantic.BaseModel):
    name: str
    moons: int
    facts: Facts | None = None


def test_the_short_form_names_types_and_nests_with_dots() -> None:
    s = parse_schema("name, order int, moons: int, mass float, ringed bool, facts.type")
    props = s.record["properties"]
    assert props["name"] == {"type": "string"}
    assert props["order"] == {"type": "integer"}
    assert props["moons"] == {"type": "integer"}
    assert props["mass"] == {"type": "number"}
    assert props["ringed"] == {"type": "boolean"}
    assert props["facts"]["properties"] == {"type": {"type": "string"}}
    assert s.record["required"] == ["name", "order", "moons", "mass", "ringed", "facts"]
    assert s.dtypes() == {
        "name": "string",
        "order": "Int64",
        "moons": "Int64",
        "mass": "Float64",
        "ringed": "boolean",
        "facts.type": "string",
    }


def test_multi_wraps_the_record_in_items() -> None:
    s = parse_schema("name, moons int", multi=True)
    wire = s.json_schema
    assert wire["required"] == ["items"]
    assert wire["properties"]["items"]["items"] == s.record
    assert s.validate({"items": [{"name": "Mars", "moons": 2}]}) == [{"name": "Mars", "moons": 2}]
    assert s.validate([{"name": "Mars", "moons": 2}]) == [{"name": "Mars", "moons": 2}]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("name, moons integer-ish", "cannot read the field"),
        ("name, moons count", "unknown type 'count'"),
        ("name, name int", "appears twice"),
        ("facts, facts.type", "both a field and a group"),
        ("facts.type, facts", "both a field and a group"),
        (" , ,", "names no fields"),
    ],
)
def test_a_bad_short_form_says_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(ParameterError, match=message) as info:
        parse_schema(spec)
    assert info.value.param == "schema"


def test_validation_messages_say_where_and_what() -> None:
    s = parse_schema("name, moons int, facts.type", multi=True)
    with pytest.raises(SchemaMismatch) as info:
        s.validate(
            {
                "items": [
                    {"name": "Mars", "moons": "two", "facts": {"type": "rocky"}},
                    {"name": "Venus", "facts": {}, "extra": 1},
                ]
            }
        )
    message = str(info.value)
    assert 'items[0].moons: expected integer, got string "two"' in message
    assert "items[1]: missing required field 'moons'" in message
    assert "items[1].facts: missing required field 'type'" in message
    assert "items[1]: unexpected field 'extra'" in message


def test_integers_may_arrive_as_whole_floats_and_numbers_as_integers() -> None:
    s = parse_schema("moons int, mass float")
    assert s.validate({"moons": 2.0, "mass": 1}) == {"moons": 2.0, "mass": 1}
    with pytest.raises(SchemaMismatch, match="moons: expected integer"):
        s.validate({"moons": 2.5, "mass": 1})
    with pytest.raises(SchemaMismatch, match="expected integer, got boolean"):
        s.validate({"moons": True, "mass": 1})


def test_a_json_schema_dict_with_refs_enums_and_bounds() -> None:
    s = parse_schema(
        {
            "type": "object",
            "title": "Sky report",
            "properties": {
                "planet": {"$ref": "#/$defs/Planet"},
                "seen": {"type": "string", "enum": ["yes", "no"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
            },
            "required": ["planet"],
            "$defs": {
                "Planet": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "moons": {"type": "integer", "minimum": 0}},
                    "required": ["name"],
                }
            },
        }
    )
    assert s.name == "Sky_report"
    assert s.json_schema["$defs"]["Planet"]["required"] == ["name"]
    assert s.dtypes() == {"planet.name": "string", "planet.moons": "Int64", "seen": "string", "tags": None}
    assert s.validate({"planet": {"name": "Mars", "moons": 2}, "seen": "yes"})
    with pytest.raises(SchemaMismatch) as info:
        s.validate({"planet": {"moons": -1}, "seen": "maybe", "tags": ["a", "b", "c"]})
    message = str(info.value)
    assert "planet: missing required field 'name'" in message
    assert "planet.moons: -1 is below the minimum 0" in message
    assert "seen: 'maybe' is not one of ['yes', 'no']" in message
    assert "tags: allows at most 2 items, got 3" in message


def test_an_array_schema_means_a_list_of_its_items() -> None:
    s = parse_schema(
        {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
    )
    assert s.multi
    assert s.validate({"items": [{"name": "Mars"}]}) == [{"name": "Mars"}]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "str"}, "not a JSON Schema"),
        ({"type": "planet"}, "not a JSON Schema type"),
        ({"type": "string"}, "describes a string"),
        (42, "a schema is a Pydantic model"),
        (dict, "a schema is a Pydantic model"),
    ],
)
def test_what_is_not_a_schema_is_refused(spec: object, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_schema(spec)


def test_a_pydantic_model_validates_with_pydantic() -> None:
    s = parse_schema(Planet)
    assert s.name == "Planet"
    assert s.json_schema["$defs"]["Facts"]["properties"]["type"] == {"title": "Type", "type": "string"}
    assert s.dtypes() == {"name": "string", "moons": "Int64", "facts.type": "string"}
    assert s.validate({"name": "Mars", "moons": "2"}) == {"name": "Mars", "moons": 2, "facts": None}
    with pytest.raises(SchemaMismatch, match="moons: Input should be a valid integer"):
        s.validate({"name": "Mars", "moons": "a couple"})


def test_list_of_a_model_and_multi_give_the_same_schema() -> None:
    a, b = parse_schema(list[Planet]), parse_schema(Planet, multi=True)
    assert a.multi and b.multi
    assert a.json_schema == b.json_schema
    with pytest.raises(SchemaMismatch, match=r"items\[1\]\.moons: Field required"):
        a.validate({"items": [{"name": "Mars", "moons": 2}, {"name": "Venus"}]})


def test_a_name_is_looked_up_in_the_namespace() -> None:
    ns = {
        "Planet": Planet,
        "report": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
        "name": "Ada",
    }
    assert parse_schema("Planet", ns).model is Planet
    assert parse_schema("report", ns).dtypes() == {"ok": "boolean"}
    # a variable that is not a schema does not shadow the short form
    assert parse_schema("name", ns).record["properties"] == {"name": {"type": "string"}}
