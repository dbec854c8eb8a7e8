"""What a JSON schema may ask of the local model's grammar (llama.cpp, ``response_format``).

llama-cpp-python's converter writes a repetition as that many nested rules, and llama.cpp
reads and samples them as written, so a schema's numbers become work and memory before any
token is made. Break-it trials found these ways a request could take the gateway down: a
string's ``maxLength`` of 20,000 (20,000 nested groups: llama.cpp's grammar parser ran out
of stack, a segmentation fault), ``minLength`` 50,000,000 (a 250 MB grammar, 19 s and a
gigabyte to convert), ``pattern`` ``^((a{0,40}){0,40}){0,40}$`` (1,145 characters, but
sampling its ambiguous nested repetitions held the model for good; so did forty
``[a-z ]*`` in a row), and 10,000 properties whose names clean to one rule name (29 s to
convert). These limits refuse such schemas with a 400 before the converter runs
(``schema_refusal``) and before llama.cpp parses what it wrote (``grammar_refusal``);
llama.cpp's own parser refuses the rest (``LlamaCppBackend._grammar_parses``).
"""

from __future__ import annotations

import re
from typing import Any

MAX_REPEAT = 1_000  # a schema's bound on a length or a count, or a pattern's {n,m}
MAX_NESTED_REPEAT = 500  # the product of a pattern's repetitions nested in one another
UNBOUNDED = 30  # what "*", "+" and "{n,}" count for in that product
MAX_LONG_REPEATS = 8  # repetitions of 10 or more (or unbounded) in one pattern, in any order
MAX_PATTERN_CHARS = 200  # a pattern's length
MAX_QUANTIFIERS = 20  # quantifiers of any kind in one pattern ("?" too: 400 in a row held it)
MAX_SCHEMA_NODES = 2_000  # objects and arrays in a schema (the converter's renaming is quadratic)
MAX_GRAMMAR_CHARS = 256 * 1024
MAX_GRAMMAR_DEPTH = 1_000  # groups open at once in the grammar (llama.cpp parses recursively)

BOUND_KEYS = (
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minContains",
    "maxContains",
    "minProperties",
    "maxProperties",
)
# JSON Schema's keywords that constrain a value (2020-12 validation, applicators, and the
# older "dependencies" and "additionalItems"), and "format" and "$ref". llama-cpp-python's
# converter (``llama_cpp.llama_grammar.SchemaConverter.visit``) takes one branch per schema
# by the first of its keywords it knows and reads only that branch's keywords
# (``_converter_reads``); an answer is held to no other one. A schema using them got answers
# that break them ("minimum": 5 answered with 1000111111111111, "type": ["string"] beside an
# enum answered "Sterilized", a "$ref" beside "minimum", two break-it trials), ending in
# finish_reason "stop". OpenAI's strict structured outputs refuse what they do not enforce,
# and so does the local model.
CONSTRAINTS = frozenset(
    {
        "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "maxLength", "minLength", "pattern", "format", "maxItems",
        "minItems", "uniqueItems", "maxContains", "minContains", "contains", "maxProperties",
        "minProperties", "required", "dependentRequired", "dependencies", "properties",
        "patternProperties", "additionalProperties", "propertyNames", "items", "prefixItems",
        "additionalItems", "unevaluatedItems", "unevaluatedProperties", "allOf", "anyOf",
        "oneOf", "not", "if", "then", "else", "dependentSchemas", "$ref",
    }
)  # fmt: skip
# the string formats the converter holds a string to (others it reads as any string)
STRING_FORMATS = frozenset({"date", "time", "date-time"})
_UUID = re.compile(r"^uuid[1-5]?$")


def _converter_reads(node: dict[str, Any]) -> frozenset[str]:
    """The keywords of schema ``node`` the converter reads: those of the branch it takes,
    in its order (``SchemaConverter.visit`` in llama-cpp-python 0.3)."""
    kind = node.get("type")
    fmt = node.get("format")
    if "$ref" in node:
        return frozenset({"$ref"})
    if "oneOf" in node or "anyOf" in node:
        return frozenset({"oneOf", "anyOf"})
    if isinstance(kind, list):
        return frozenset({"type"})
    if "const" in node:
        return frozenset({"const", "type"})  # the constant is of its type
    if "enum" in node:
        return frozenset({"enum", "type"})
    if kind in (None, "object") and (
        "properties" in node or node.get("additionalProperties", True) is not True
    ):
        return frozenset({"type", "properties", "required", "additionalProperties"})
    if kind in (None, "object") and "allOf" in node:
        return frozenset()  # merges the properties of its parts only: refused
    if kind in (None, "array") and ("items" in node or "prefixItems" in node):
        if isinstance(node.get("items") or node.get("prefixItems"), list):
            return frozenset({"type", "items"} if "items" in node else {"type", "prefixItems"})
        return frozenset({"type", "items", "minItems", "maxItems"})
    if kind in (None, "string") and "pattern" in node:
        return frozenset({"type", "pattern"})
    if (
        kind in (None, "string")
        and isinstance(fmt, str)
        and (_UUID.match(fmt) or fmt in STRING_FORMATS)
    ):
        return frozenset({"type", "format"})
    if kind == "string" and ("minLength" in node or "maxLength" in node):
        return frozenset({"type", "minLength", "maxLength"})
    return frozenset({"type"})


def _pointer(root: Any, ref: str) -> Any:
    """The subschema a local ``$ref`` ("#/…", RFC 6901) points to in ``root``, or None."""
    if not ref.startswith("#"):
        return None
    node = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


# "{n}", "{n,}", "{n,m}", "{,m}", spaces and digit separators ("4_0") allowed inside as the
# converter (Python's int) reads them
_QUANTIFIER = re.compile(r"\{\s*([\d_]*)\s*(,\s*([\d_]*)\s*)?\}|[*+?]")


def schema_refusal(schema: Any) -> str | None:
    """Why the local model's grammar cannot hold ``schema`` (a parsed JSON schema), or None:
    more than ``MAX_SCHEMA_NODES`` objects and arrays (10,000 properties whose names clean
    to one rule name took the converter 29 s), a bound (``BOUND_KEYS``) above
    ``MAX_REPEAT``, or a ``pattern`` longer than ``MAX_PATTERN_CHARS``, with more than
    ``MAX_QUANTIFIERS`` quantifiers, whose repetitions nest to more than
    ``MAX_NESTED_REPEAT`` (``pattern_repeats``) or that holds more than ``MAX_LONG_REPEATS``
    long ones (``long_repeats``). The schema is walked without recursion, so no depth of it
    is a fault here."""
    stack = [schema]
    nodes = 0
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list):
            nodes += 1
            if nodes > MAX_SCHEMA_NODES:
                return f"it has more than {MAX_SCHEMA_NODES:,} objects and arrays"
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for key in BOUND_KEYS:
            value = node.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_REPEAT:
                return f"{key} {value} is more than {MAX_REPEAT:,}"
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            if len(pattern) > MAX_PATTERN_CHARS:
                return f"its pattern is {len(pattern):,} characters, more than {MAX_PATTERN_CHARS}"
            nested, long, count = _repeats(pattern)
            if count > MAX_QUANTIFIERS:
                return (
                    f"the pattern {pattern[:80]!r} has {count:,} quantifiers, more than "
                    f"{MAX_QUANTIFIERS}"
                )
            if nested > MAX_NESTED_REPEAT:
                return (
                    f"the pattern {pattern[:80]!r} repeats up to {nested:,} times, its "
                    f"nested repetitions multiplied, more than {MAX_NESTED_REPEAT:,}"
                )
            if long > MAX_LONG_REPEATS:
                return (
                    f"the pattern {pattern[:80]!r} has {long:,} long or unbounded "
                    f"repetitions, more than {MAX_LONG_REPEATS}"
                )
        stack.extend(node.values())
    return None


def unenforced(schema: Any) -> str | None:
    """What of ``schema`` (a parsed JSON schema) the converter would not hold the answer to,
    or None: in the schema or any subschema (properties, items, prefixItems, anyOf, oneOf,
    additionalProperties, $defs, and wherever a "$ref" points), a constraint (``CONSTRAINTS``)
    that the converter's branch for it does not read (``_converter_reads``: "minimum"
    anywhere, "maxLength" beside a "pattern", anything beside a "$ref", an "enum" beside a
    type list, a string "format" other than date, time, date-time or uuid); a subschema
    ``false`` (no value matches it), an empty "enum", "anyOf" or "oneOf" (none either), a
    "$ref" that points nowhere in the schema, or a schema that is no object or boolean.
    Property names are names, not keywords. Walked without recursion, each subschema once."""
    stack: list[tuple[str, Any]] = [("schema", schema)]
    seen: set[int] = set()
    while stack:
        where, node = stack.pop()
        if node is True:
            continue
        if node is False:
            return f"{where} is false: no value matches it"
        if not isinstance(node, dict):
            return f"{where} is not a JSON schema (an object or a boolean)"
        if id(node) in seen:
            continue
        seen.add(id(node))
        reads = _converter_reads(node)
        for key in sorted(CONSTRAINTS & node.keys() - reads):
            return f"{where} uses {key!r}, which the local model's grammar cannot enforce here"
        for key in ("enum", "anyOf", "oneOf"):
            if node.get(key) == []:
                return f"{where}.{key} is empty: no value matches it"
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = _pointer(schema, ref)
            if target is None:
                return f"{where}.$ref {ref[:80]!r} points to nothing in the schema"
            stack.append((f"{where}.$ref", target))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            stack.append((f"{where}.additionalProperties", extra))
        items = node.get("items")
        if isinstance(items, dict | bool):
            stack.append((f"{where}.items", items))
        for key in ("items", "prefixItems", "anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                stack.extend((f"{where}.{key}[{i}]", v) for i, v in enumerate(node[key]))
        for key in ("properties", "$defs", "definitions"):
            if isinstance(node.get(key), dict):
                stack.extend((f"{where}.{key}.{k}", v) for k, v in node[key].items())
    return None


def pattern_repeats(pattern: str) -> int:
    """The largest product of the upper bounds of repetitions nested in one another in a
    regular expression: ``a{3}`` 3, ``(a{0,40}){0,40}`` 1,600, ``(\\d{3}-)*`` 90 (``*``,
    ``+`` and ``{n,}`` count ``UNBOUNDED``, ``?`` 1; ``{0, 40}`` and ``{,40}`` are 40, as the
    converter reads them). Escapes and character classes are single characters; a brace
    that is no quantifier is one too."""
    return _repeats(pattern)[0]


def long_repeats(pattern: str) -> int:
    """How many repetitions of 10 or more, or unbounded, a regular expression holds, nested
    or one after another: ``"[a-z ]*" * 40`` 40 (each splits a string among the others: a
    re-check's 40 in a row held the model for 77 s, 300 for good)."""
    return _repeats(pattern)[1]


def _repeats(pattern: str) -> tuple[int, int, int]:
    """``pattern_repeats``, ``long_repeats`` and the number of quantifiers of ``pattern``,
    read in one pass."""
    groups = [1]  # per open group: its largest product so far
    last: int | None = None  # the product of what a quantifier here would repeat
    best, long, count = 1, 0, 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i, last = i + 2, 1
            continue
        if c == "[":
            j = i + 1
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i, last = j + 1, 1
            continue
        if c == "(":
            groups.append(1)
            i, last = i + 1, None
            continue
        if c == ")":
            inner = groups.pop() if len(groups) > 1 else 1
            groups[-1] = max(groups[-1], inner)
            i, last = i + 1, inner
            continue
        m = _QUANTIFIER.match(pattern, i)
        bound = _bound(m) if m is not None and last is not None else None
        if m is not None and last is not None and bound is not None:
            product = last * bound
            groups[-1] = max(groups[-1], product)
            best = max(best, product)
            long += bound >= 10
            count += 1
            i, last = m.end(), None
            continue
        i, last = i + 1, 1
    return max(best, *groups), long, count


def _bound(m: re.Match[str]) -> int | None:
    """The upper bound of a quantifier ``_QUANTIFIER`` matched, or None for braces that are
    none ("{}")."""
    if m.group(0) in ("*", "+"):
        return UNBOUNDED
    if m.group(0) == "?":
        return 1
    low = _number(m.group(1)) if m.group(1) else 0
    if m.group(2) is None:
        return low if m.group(1) else None
    return _number(m.group(3)) if m.group(3) else max(low, UNBOUNDED)


def _number(digits: str) -> int:
    """A quantifier's bound as Python's ``int`` reads it ("4_0" is 40; a re-check's way past
    the limits); one it cannot read counts as unbounded."""
    try:
        return int(digits)
    except ValueError:
        return UNBOUNDED


def grammar_refusal(grammar: str) -> str | None:
    """Why llama.cpp should not be given ``grammar`` (GBNF text), or None: longer than
    ``MAX_GRAMMAR_CHARS``, or groups nested deeper than ``MAX_GRAMMAR_DEPTH`` (quoted
    strings and character classes skipped)."""
    if len(grammar) > MAX_GRAMMAR_CHARS:
        return f"its grammar is {len(grammar):,} characters, more than {MAX_GRAMMAR_CHARS:,}"
    depth = deepest = 0
    i = 0
    closer = ""
    while i < len(grammar):
        c = grammar[i]
        if closer:
            if c == "\\":
                i += 1
            elif c == closer:
                closer = ""
        elif c == '"':
            closer = '"'
        elif c == "[":
            closer = "]"
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth -= 1
        i += 1
    if deepest > MAX_GRAMMAR_DEPTH:
        return f"its grammar nests {deepest:,} groups, more than {MAX_GRAMMAR_DEPTH:,}"
    return None
