"""The limits a JSON schema's grammar is held to before the local model converts or parses
it (``boundgate.backends.grammars``): break-it trials' schemas that crashed or held the
gateway, and ordinary ones that must pass."""

from __future__ import annotations

import pytest

from boundgate.backends.grammars import (
    MAX_GRAMMAR_DEPTH,
    grammar_refusal,
    long_repeats,
    pattern_repeats,
    schema_refusal,
    unenforced,
)


@pytest.mark.parametrize(
    ("pattern", "repeats"),
    [
        ("a{3}", 3),
        (r"(\d{3}-)*\d{4}", 90),  # "*" counts 30
        ("[A-Z]{2}[(]{9}", 9),  # a class is one character, its "(" none
        (r"\{x\}{2}", 2),  # an escaped brace is a character
        ("(?:ab|cd)+?", 30),  # "(?:" opens a group; a lazy "?" adds nothing
        ("(a{0,40}){0,40}", 1_600),
        ("^((a{0,40}){0,40}){0,40}$", 64_000),  # held the model for good
        ("(a*)*", 900),
        ("a{2,}", 30),
        ("a{,3}", 3),  # the converter reads it as {0,3} (a re-check's way past the limit)
        ("^((a{0, 40}){0, 40}){0, 40}$", 64_000),  # spaces inside, as the converter allows
        ("x{}", 1),  # braces that are no quantifier
        ("^((a{0,4_0}){0,4_0}){0,4_0}$", 64_000),  # Python's int reads "4_0" as 40
    ],
)
def test_nested_repetitions_multiply(pattern: str, repeats: int) -> None:
    assert pattern_repeats(pattern) == repeats


def test_long_repetitions_are_counted_in_a_row_too() -> None:
    """A re-check: 40 "[a-z ]*" in a row (30 each, never nested) held the model for 77 s,
    300 for good; 8 answer in 0.2 s."""
    assert long_repeats("[a-z ]*" * 40) == 40
    assert long_repeats(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$") == 3
    assert long_repeats(r"^\d{4}-\d{2}-\d{2}$") == 0
    assert "10 long or unbounded" in (schema_refusal({"pattern": "[a-z ]*" * 10}) or "")
    assert schema_refusal({"pattern": "[a-z ]*" * 8}) is None
    # 400 optional characters in a row held the model too: quantifiers of any kind and a
    # pattern's length are counted
    assert "25 quantifiers" in (schema_refusal({"pattern": "[a ]?" * 25}) or "")
    assert "2,000 characters" in (schema_refusal({"pattern": "[a ]?" * 400}) or "")
    assert schema_refusal({"pattern": "[a ]?" * 20}) is None


def test_schemas_past_the_limits_are_refused_with_the_reason() -> None:
    refused = {
        "maxLength 20000": {"type": "string", "maxLength": 20_000},  # a parser's stack overflow
        "minLength 50000000": {"type": "string", "minLength": 50_000_000},  # 250 MB grammar
        "maxItems 20000": {"type": "array", "items": {"type": "integer"}, "maxItems": 20_000},
        "64,000 times": {
            "type": "object",
            "properties": {"x": {"type": "string", "pattern": "^((a{0,40}){0,40}){0,40}$"}},
        },
    }
    for why, schema in refused.items():
        reason = schema_refusal(schema)
        assert reason is not None and why in reason, (why, reason)
    deep: dict[str, object] = {"type": "string"}
    for _ in range(50_000):  # no recursion: any depth is walked, and refused for its size
        deep = {"type": "array", "items": deep}
    assert "more than 2,000 objects and arrays" in (schema_refusal(deep) or "")
    # 10,000 properties whose names clean to one rule name took the converter 29 s
    clashing = {"properties": {f"p{chr(0x4E00 + k)}": {"const": k} for k in range(3_000)}}
    assert "objects and arrays" in (schema_refusal(clashing) or "")
    for schema in (
        {"type": "string", "maxLength": 1_000},
        {"type": "object", "properties": {"capital": {"type": "string", "maxLength": 20}}},
        {"type": "string", "pattern": r"^\d{3}-\d{3}-\d{4}$"},
        {"type": "integer", "minimum": 0, "maximum": 10**18},  # numbers are no repetitions
        {"type": "string", "maxLength": True},  # a boolean is no bound
    ):
        assert schema_refusal(schema) is None, schema


def test_grammars_too_long_or_too_deep_are_refused() -> None:
    assert grammar_refusal('root ::= "a" ( "b" ( "c" )? )?') is None
    deep = "root ::= " + "( " * (MAX_GRAMMAR_DEPTH + 1) + '"a"' + " )?" * (MAX_GRAMMAR_DEPTH + 1)
    assert "nests 1,001 groups" in (grammar_refusal(deep) or "")
    quoted = 'root ::= "' + "(" * 5_000 + '" [(]'  # in a string or a class: no groups
    assert grammar_refusal(quoted) is None
    assert "characters" in (grammar_refusal("x" * 300_000) or "")


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        # a break-it trial: "minimum": 5 was answered with 1000111111111111, finish "stop"
        (
            {"type": "object", "properties": {"n": {"type": "integer", "minimum": 5}}},
            "schema.properties.n uses 'minimum'",
        ),
        ({"type": "array", "items": {"type": "number", "maximum": 1}}, "items uses 'maximum'"),
        ({"anyOf": [{"type": "string"}, {"not": {"type": "null"}}]}, "anyOf[1] uses 'not'"),
        ({"type": "array", "uniqueItems": True}, "uses 'uniqueItems'"),
        ({"$defs": {"a": {"type": "string", "format": "email"}}}, "a uses 'format'"),
        ({"type": "string", "format": "date-time", "maxLength": 40}, "uses 'maxLength'"),
        (False, "schema is false"),
        ({"properties": {"x": False}}, "schema.properties.x is false"),
        ({"enum": []}, "enum is empty"),  # a trial's message blamed "too large"
        ("object", "not a JSON schema"),
        # a re-check's ways past the first check: what the converter's branch drops
        (
            {"properties": {"n": {"$ref": "#/x"}}, "x": {"type": "integer", "minimum": 5}},
            "schema.properties.n.$ref uses 'minimum'",
        ),
        ({"type": ["string"], "enum": ["red", "green"]}, "uses 'enum'"),
        ({"type": ["object"], "properties": {"n": {"type": "integer"}}}, "uses 'properties'"),
        ({"allOf": [{"type": "integer"}]}, "uses 'allOf'"),
        ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 5}, "uses 'maxLength'"),
        ({"$ref": "#/$defs/a", "maxLength": 3, "$defs": {"a": {"type": "string"}}}, "'maxLength'"),
        ({"type": "array", "items": {"type": "string"}, "prefixItems": [{}]}, "'prefixItems'"),
        ({"properties": {"a": {}}, "dependencies": {"a": ["b"]}}, "uses 'dependencies'"),
        ({"type": "object", "required": ["n"]}, "uses 'required'"),  # any object
        ({"$ref": "https://example.com/s.json"}, "points to nothing"),  # never fetched
    ],
)
def test_a_schema_the_grammar_cannot_hold_is_refused(schema: object, said: str) -> None:
    assert said in (unenforced(schema) or "")


def test_schemas_the_grammar_holds_pass() -> None:
    """Names are not keywords: a property called "minimum" is a property; formats and
    bounds the converter enforces pass."""
    for schema in (
        {"type": "object", "properties": {"minimum": {"type": "integer"}}, "required": ["minimum"]},
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": "^[a-z]+$"},
        {"type": "string", "maxLength": 40},
        {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
        {"$defs": {"p": {"type": "string"}}, "properties": {"q": {"$ref": "#/$defs/p"}}},
        True,
        {"properties": {"x": True}},
        # OpenAI's strict mode asks for it (a re-check: refused by the first check)
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        # what pydantic writes: $defs, a nested model by $ref, an optional field, an enum
        {
            "$defs": {
                "Colour": {"enum": ["red", "green"], "title": "Colour", "type": "string"},
                "Sub": {
                    "properties": {"x": {"title": "X", "type": "integer"}},
                    "required": ["x"],
                    "title": "Sub",
                    "type": "object",
                    "additionalProperties": False,
                },
            },
            "properties": {
                "colour": {"$ref": "#/$defs/Colour"},
                "sub": {"$ref": "#/$defs/Sub", "description": "a nested one"},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                "when": {"type": "string", "format": "date-time"},
                "id": {"type": "string", "format": "uuid"},
            },
            "required": ["colour", "sub", "note", "when", "id"],
            "title": "Answer",
            "type": "object",
            "additionalProperties": False,
        },
    ):
        assert unenforced(schema) is None, schema
