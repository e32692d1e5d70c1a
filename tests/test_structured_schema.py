"""Schemas: the short form, JSON Schema dicts, Pydantic models, validation messages, clear refusals."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from IPython.utils.capture import capture_output

from qwen_magics.emulator import Emulator
from qwen_magics.errors import ParameterError
from qwen_magics.structured.ask import ask_json
from qwen_magics.structured.schema import SchemaMismatch, parse_schema


class Facts(pydantic.BaseModel):
    type: str


class Planet(pydantic.BaseModel):
    name: str
    moons: int
    facts: Facts | None = None


def test_the_short_form_names_types_and_nests_with_dots() -> None:
    s = parse_schema("name, order int, moons int, mass float, ringed bool, facts.type")
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


def as_llm_writes_it(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the ``additionalProperties: false`` strict JSON Schema mode needs, which
    llm's ``schema_dsl`` leaves out; what remains must equal llm's output key for key."""
    return {k: v for k, v in record.items() if k != "additionalProperties"}


def test_llm_schema_syntax_with_descriptions() -> None:
    s = parse_schema("name, age int, bio: a short bio")
    assert as_llm_writes_it(s.record) == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "bio": {"type": "string", "description": "a short bio"},
        },
        "required": ["name", "age", "bio"],
    }
    assert s.record["additionalProperties"] is False


def test_a_type_then_a_colon_gives_a_typed_field_with_a_description() -> None:
    s = parse_schema("name int: the age")
    assert s.record["properties"] == {"name": {"type": "integer", "description": "the age"}}
    # as in llm, the colon starts a description, not a type: this field is a string
    assert parse_schema("moons: int").record["properties"] == {
        "moons": {"type": "string", "description": "int"}
    }


def test_one_field_per_line_lets_descriptions_hold_commas() -> None:
    s = parse_schema("name: the person's name\nage int: their age, in years\nbio")
    assert as_llm_writes_it(s.record) == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "the person's name"},
            "age": {"type": "integer", "description": "their age, in years"},
            "bio": {"type": "string"},
        },
        "required": ["name", "age", "bio"],
    }


@pytest.mark.parametrize(
    ("spec", "properties"),
    [
        ("name, age int,", {"name": {"type": "string"}, "age": {"type": "integer"}}),  # trailing comma
        ("\nname\n\n  age int  \n", {"name": {"type": "string"}, "age": {"type": "integer"}}),  # blank lines
        (
            "  name  ,  age   int  :  in years  ",
            {"name": {"type": "string"}, "age": {"type": "integer", "description": "in years"}},
        ),
        (  # on one line a comma ends the description, as in llm
            "bio: short, witty",
            {"bio": {"type": "string", "description": "short"}, "witty": {"type": "string"}},
        ),
        (  # a newline anywhere, even only at the end, means one field per line, as in llm
            "bio: short, witty\n",
            {"bio": {"type": "string", "description": "short, witty"}},
        ),
        (  # only the first colon starts the description
            "url: see https://example.org",
            {"url": {"type": "string", "description": "see https://example.org"}},
        ),
        ("name:", {"name": {"type": "string"}}),  # an empty description is left out
        ("name str: who", {"name": {"type": "string", "description": "who"}}),
        ("first-name, e-mail", {"first-name": {"type": "string"}, "e-mail": {"type": "string"}}),
        ("score float, ok bool", {"score": {"type": "number"}, "ok": {"type": "boolean"}}),
    ],
)
def test_llm_edge_cases_read_as_llm_reads_them(spec: str, properties: dict[str, Any]) -> None:
    assert parse_schema(spec).record["properties"] == properties


def test_dots_nest_and_keep_their_description() -> None:
    s = parse_schema("name\nfacts.type: rocky or gas giant, as the books say\nfacts.moons int")
    assert s.record["properties"]["facts"] == {
        "type": "object",
        "properties": {
            "type": {"type": "string", "description": "rocky or gas giant, as the books say"},
            "moons": {"type": "integer"},
        },
        "required": ["type", "moons"],
        "additionalProperties": False,
    }
    assert s.dtypes() == {"name": "string", "facts.type": "string", "facts.moons": "Int64"}


def test_our_longer_type_names_still_work_alongside_llms() -> None:
    s = parse_schema("a string, b text, c integer, d number, e boolean, f INT")
    assert [p["type"] for p in s.record["properties"].values()] == [
        "string",
        "string",
        "integer",
        "number",
        "boolean",
        "integer",
    ]


def test_descriptions_reach_the_model_in_the_schema_it_is_sent(qwen_env: Emulator) -> None:
    ask_json("Describe Mars", schema="name, moons int: how many", model="qwen-plus")
    sent = qwen_env.chat_requests[-1].body["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["moons"] == {"type": "integer", "description": "how many"}
    # no JSON Schema mode on the default model: the schema, descriptions included, is in the prompt
    qwen_env.queue_reply('{"name": "Mars", "bio": "red"}')
    ask_json("Describe Mars", schema="name\nbio: one line, no more")
    system = next(m["content"] for m in qwen_env.chat_requests[-1].body["messages"] if m["role"] == "system")
    assert json.dumps({"type": "string", "description": "one line, no more"}) in system


def test_qwen_schema_magic_takes_llm_syntax_with_descriptions(shell, qwen_env: Emulator) -> None:  # type: ignore[no-untyped-def]
    shell.run_line_magic("load_ext", "qwen_magics")
    with capture_output():
        shell.run_cell_magic(
            "qwen", '-m qwen-plus --schema "name, age int: in years, bio: a short bio"', "A person"
        )
    sent = qwen_env.chat_requests[-1].body["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["age"] == {"type": "integer", "description": "in years"}
    assert sent["properties"]["bio"] == {"type": "string", "description": "a short bio"}
    assert set(shell.user_ns["_qwen"].data) == {"name", "age", "bio"}


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
        ("name, moons integer-ish", "unknown type 'integer-ish' for 'moons'; use str, int, float or bool"),
        ("name, moons count", "unknown type 'count'"),
        ("first name", "unknown type 'name' for 'first'.*a name is one word"),
        ("name, : the age", "the field ': the age' has no name before ':'"),
        (
            "age int years",
            "cannot read the field 'age int years': write 'name \\[type\\]\\[: description\\]'",
        ),
        ("name,\nage int", "the field name 'name,' holds a comma: with one field per line"),
        ("facts..type", "cannot read the field name 'facts..type': nest with dots"),
        ("facts.", "cannot read the field name 'facts.'"),
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


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Plnet", "Plnet is not defined in the notebook; did you mean Planet? (for one field called 'Plnet'"),
        ("NotDefined", "NotDefined is not defined in the notebook; run the cell that defines it first"),
        ("models.Persn", "Persn is not defined in models; did you mean Person?"),
        ("modls.Person", "modls is not defined in the notebook; did you mean models?"),
        ("Count", "Count is an int, not a schema; a schema is a Pydantic model"),
    ],
)
def test_a_class_name_the_notebook_does_not_define_is_refused_with_close_names(
    spec: str, message: str
) -> None:
    import types

    namespace = {"Planet": Planet, "models": types.SimpleNamespace(Person=Planet), "Count": 8, "In": []}
    with pytest.raises(ParameterError, match="^" + message.replace("(", r"\(").replace("?", r"\?")):
        parse_schema(spec, namespace)
    assert parse_schema("models.Person", namespace).model is Planet  # what it should have been


def test_a_lower_case_word_stays_a_one_field_short_form() -> None:
    namespace = {"Planet": Planet, "name": "Ada"}
    for spec in ("name", "planet", "facts.type"):
        assert parse_schema(spec, namespace).record["required"] == [spec.split(".")[0]]
    assert list(parse_schema("Plnet str", namespace).record["properties"]) == ["Plnet"]  # the way out
