"""Finds the vector selectors (metric name + matchers) in a PromQL expression.

Not a PromQL parser: Prometheus itself checks syntax (promtool, /api/v1/query). This only needs to
tell which series an expression reads, so a check can ask whether each of them has data and whether
each metric name is in the contract. Handles strings, matchers, ranges, functions, aggregations with
by/without, and vector matching with on/ignoring/group_left/group_right.
"""

import re

_TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<matchers>\{)
  | (?P<range>\[[^\]]*\])
  | (?P<duration>(?:[0-9]+(?:ms|[smhdwy]))+\b)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<number>(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?))
  | (?P<space>\s+)
  | (?P<other>.)
""", re.X)

# Words followed by a parenthesised label list, not by an expression.
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LIST_KEYWORDS | {"bool", "and", "or", "unless", "offset", "atan2", "inf",
                                    "nan", "Inf", "NaN"}


def _read_braces(expr, start):
    """Returns (matchers text without braces, index after the closing brace)."""
    i, depth, quote = start, 0, None
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'`":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return expr[start + 1:i], i + 1
        i += 1
    raise ValueError(f"unbalanced braces in {expr!r}")


def _next_significant(expr, pos):
    while pos < len(expr) and expr[pos].isspace():
        pos += 1
    return expr[pos] if pos < len(expr) else ""


def _next_word(expr, pos):
    match = re.compile(r"\s*([a-zA-Z_]+)").match(expr, pos)
    return match.group(1) if match else ""


def _skip_parens(expr, pos):
    """pos at optional space then '('; returns index after the matching ')'."""
    while expr[pos].isspace():
        pos += 1
    assert expr[pos] == "("
    depth = 0
    while pos < len(expr):
        if expr[pos] == "(":
            depth += 1
        elif expr[pos] == ")":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    raise ValueError(f"unbalanced parentheses in {expr!r}")


def selectors(expr):
    """Returns [(metric_name_or_None, matchers_text)] for each vector selector in expr."""
    found, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        kind, text = match.lastgroup, match.group()
        pos = match.end()
        if kind == "matchers":  # a selector without a name: {__name__=~"..."}
            body, pos = _read_braces(expr, match.start())
            found.append((None, body))
        elif kind == "ident":
            nxt = _next_significant(expr, pos)
            if text in _LABEL_LIST_KEYWORDS:
                if nxt == "(":
                    pos = _skip_parens(expr, pos)
            elif text in _KEYWORDS or nxt == "(" or _next_word(expr, pos) in ("by", "without"):
                continue  # operator, function, or aggregation (also `sum by (x) (...)`)
            else:
                body = ""
                if nxt == "{":
                    while expr[pos].isspace():
                        pos += 1
                    body, pos = _read_braces(expr, pos)
                found.append((text, body))
    return found


def metric_names(expr):
    return {name for name, _ in selectors(expr) if name}
