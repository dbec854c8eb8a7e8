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
# keywords llama-cpp-python's converter (``llama_cpp.llama_grammar.SchemaConverter``) reads
# nowhere: a schema using them got answers that break them ("minimum": 5 answered with
# 1000111111111111, a break-it trial) ending in finish_reason "stop". OpenAI's strict
# structured outputs refuse keywords they do not enforce, and so does the local model.
UNENFORCED_KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "minProperties",
    "maxProperties",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
    "not",
    "if",
    "then",
    "else",
)
# the string formats the converter holds a string to (others it reads as any string)
STRING_FORMATS = frozenset(
    {"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"}
)
# where a schema keeps its subschemas: one schema, a list of them, or a map of names to them
_ONE_SCHEMA = ("items", "additionalProperties", "additionalItems")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_SCHEMA_MAPS = ("properties", "$defs", "definitions")

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
    or None: a keyword it reads nowhere (``UNENFORCED_KEYWORDS``) or a string ``format`` it
    does not know (``STRING_FORMATS``) in any subschema, a schema that is not an object or
    a boolean, ``false`` (no answer matches it), or an empty ``enum``, ``anyOf`` or
    ``oneOf`` (none either). Only subschemas are read as schemas: a property named
    "minimum" is a name. Walked without recursion."""
    stack: list[tuple[str, Any]] = [("schema", schema)]
    while stack:
        where, node = stack.pop()
        if node is False:
            return f"{where} is false: no answer matches it"
        if node is True:
            continue
        if not isinstance(node, dict):
            return f"{where} is not a JSON schema (an object or a boolean)"
        for key in UNENFORCED_KEYWORDS:
            if key in node:
                return f"{where} uses {key!r}, which the local model's grammar cannot enforce"
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt not in STRING_FORMATS:
            return (
                f"{where} has format {fmt!r}; the local model's grammar holds strings to "
                f"{', '.join(sorted(STRING_FORMATS))} only"
            )
        for key in ("enum", "anyOf", "oneOf"):
            if node.get(key) == []:
                return f"{where}.{key} is empty: no answer matches it"
        for key in _ONE_SCHEMA:
            if isinstance(node.get(key), dict | bool):
                stack.append((f"{where}.{key}", node[key]))
        for key in _SCHEMA_LISTS:
            if isinstance(node.get(key), list):
                stack.extend((f"{where}.{key}[{i}]", v) for i, v in enumerate(node[key]))
        for key in _SCHEMA_MAPS:
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
