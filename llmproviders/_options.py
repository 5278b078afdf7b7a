"""Typed keyword options: what a provider accepts, checked before any network I/O.

A provider declares its options as a mapping from name to a small checker
(``{"temperature": Number(0, 2)}``). :func:`check_options` refuses an unknown name
(:class:`UnsupportedOptionError`, listing the accepted ones) and a value of the wrong
type or out of range (:class:`InvalidArgumentError`, naming the option and what it
must be), so ``temperature="hot"`` or ``max_tokens="100"`` never reaches a server.

Example usage::

    class MyProvider(Provider):
        options = {"temperature": Number(0, 2), "stop": AnyOf(Text(), ListOf(Text()))}
"""

from __future__ import annotations

import json
import math
from typing import Any, Collection, Dict, Mapping, Optional, Union

from ._exceptions import InvalidArgumentError, UnsupportedOptionError
from ._http import header_problem

__all__ = [
    "Option",
    "Anything",
    "Number",
    "Integer",
    "Flag",
    "Text",
    "Secret",
    "Headers",
    "ListOf",
    "AnyOf",
    "Object",
    "Tools",
    "OptionSpecs",
    "check_options",
]


class Option:
    """One option's check. Subclasses set :attr:`expected` (what the error message says
    the value must be) and implement :meth:`accepts`."""

    expected = "a JSON value"
    #: Never show the value in an error (a key, a password).
    secret = False

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def check(self, provider: str, name: str, value: Any) -> None:
        """Raise :class:`InvalidArgumentError` naming the option unless ``value`` is good."""
        if not self.accepts(value):
            shown = f"a {type(value).__name__}" if self.secret else _show(value)
            raise InvalidArgumentError(
                f"{provider}: option {name!r} must be {self.expected}, not {shown}", provider=provider
            )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True  # (math.isfinite would overflow on a huge int)
    return isinstance(value, float) and math.isfinite(value)


def _range(kind: str, low: Optional[float], high: Optional[float]) -> str:
    if low is not None and high is not None:
        return f"{kind} from {low:g} to {high:g}" if low != high else f"{kind} equal to {low:g}"
    if low is not None:
        return f"{kind} >= {low:g}"
    if high is not None:
        return f"{kind} <= {high:g}"
    return kind


class Anything(Option):
    """Any plain JSON value (the default for providers that list option names only)."""

    def accepts(self, value: Any) -> bool:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return False
        return True


class Number(Option):
    """A finite int or float (not a bool), optionally within ``[low, high]``."""

    def __init__(self, low: Optional[float] = None, high: Optional[float] = None) -> None:
        self.low, self.high = low, high
        self.expected = _range("a number", low, high)

    def accepts(self, value: Any) -> bool:
        return (
            _is_number(value)
            and (self.low is None or value >= self.low)
            and (self.high is None or value <= self.high)
        )


class Integer(Number):
    """A whole number (an int, not a bool), optionally within ``[low, high]``; always one
    that fits in 64 bits, as every server reads them."""

    def __init__(self, low: Optional[int] = None, high: Optional[int] = None, *, expected: Optional[str] = None) -> None:
        super().__init__(low, high)
        self.expected = expected or _range("a whole number", low, high)

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and -(2**63) <= value < 2**63 and super().accepts(value)


class Flag(Option):
    """``True`` or ``False``."""

    expected = "True or False"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


class Text(Option):
    """A string: non-empty unless ``empty=True``; one of ``choices`` if given."""

    def __init__(self, choices: Optional[Collection[str]] = None, *, empty: bool = False) -> None:
        self.choices = tuple(choices) if choices is not None else None
        self.empty = empty
        if self.choices:
            self.expected = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            self.expected = "a string" if empty else "a non-empty string"

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, str) or (not value and not self.empty):
            return False
        return self.choices is None or value in self.choices


class Secret(Option):
    """A credential: a non-empty string that can travel in an HTTP header (printable
    Latin-1, no spaces). Its value never appears in an error."""

    expected = "a non-empty string of printable characters without spaces"
    secret = True

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, str) or not value or not value.isprintable():
            return False
        if any(c.isspace() for c in value):
            return False
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            return False
        return True


#: Headers that frame the request or steer the connection: set by the HTTP layer, never
#: by a caller (a second framing next to the body's own is how requests are smuggled).
FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "host", "connection", "upgrade", "te", "trailer", "keep-alive",
     "proxy-connection", "expect"}
)


class Headers(Option):
    """Extra request headers: a dict of header names to values that HTTP can carry, none
    of them one that frames the request (:data:`FRAMING_HEADERS`). Values are never shown
    in an error (they may be keys)."""

    expected = "a dict of header names to string values"
    secret = True

    def accepts(self, value: Any) -> bool:
        return isinstance(value, dict) and all(_header_trouble(k, v) is None for k, v in value.items())

    def check(self, provider: str, name: str, value: Any) -> None:
        if not isinstance(value, dict):
            super().check(provider, name, value)
        for key, item in value.items():
            problem = _header_trouble(key, item)
            if problem is not None:
                raise InvalidArgumentError(f"{provider}: option {name!r}: {problem}", provider=provider)


def _header_trouble(name: Any, value: Any) -> Optional[str]:
    problem = header_problem(name, value)
    if problem is None and name.lower() in FRAMING_HEADERS:
        return f"{name!r} frames the request or its connection, which the HTTP layer does itself; leave it out"
    return problem


class ListOf(Option):
    """A list (or tuple) whose every item passes ``item``; at least ``min_length`` items."""

    def __init__(self, item: Option, *, min_length: int = 0, what: Optional[str] = None) -> None:
        self.item = item
        self.min_length = min_length
        self.expected = what or f"a list of {_plural(item.expected)}"

    def accepts(self, value: Any) -> bool:
        return (
            isinstance(value, (list, tuple))
            and len(value) >= self.min_length
            and all(self.item.accepts(v) for v in value)
        )


def _plural(expected: str) -> str:
    for article in ("a ", "an "):
        if expected.startswith(article):
            return expected[len(article) :] + "s"
    return expected


class AnyOf(Option):
    """A value that passes any one of ``options``."""

    def __init__(self, *options: Option) -> None:
        self.options = options
        self.expected = " or ".join(option.expected for option in options)

    def accepts(self, value: Any) -> bool:
        return any(option.accepts(value) for option in self.options)


class Object(Option):
    """A JSON object: a dict with string keys and plain JSON values; each value passes
    ``values`` if given."""

    def __init__(self, values: Optional[Option] = None, *, what: Optional[str] = None) -> None:
        self.values = values
        self.expected = what or (
            f"a dict of str keys to {_plural(values.expected)}" if values else "a dict (a JSON object with str keys)"
        )

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            return False
        if self.values is not None:
            return all(self.values.accepts(v) for v in value.values())
        return Anything().accepts(value)


class Tools(Option):
    """OpenAI's ``tools``: a list of ``{"type": "function", "function": {"name": str,
    "description"?: str, "parameters"?: {...}}}``."""

    expected = (
        "a list of tools, each {'type': 'function', 'function': {'name': str, 'description': str, "
        "'parameters': {JSON schema}}}"
    )

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, (list, tuple)) or not Anything().accepts(list(value)):
            return False
        for tool in value:
            if not isinstance(tool, dict) or tool.get("type") != "function":
                return False
            function = tool.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
                return False
            if "description" in function and not isinstance(function["description"], str):
                return False
            if "parameters" in function and not isinstance(function["parameters"], dict):
                return False
        return True


OptionSpecs = Mapping[str, Option]
#: What a provider may declare: a mapping of names to checks, or (older style) a set of
#: names whose values may be any JSON value.
OptionsDeclaration = Union[Mapping[str, Option], Collection[str]]


def specs_of(declared: OptionsDeclaration) -> Dict[str, Option]:
    """A provider's ``options`` as a name -> :class:`Option` mapping."""
    if isinstance(declared, Mapping):
        return dict(declared)
    return {name: Anything() for name in declared}


def check_options(provider: str, declared: OptionsDeclaration, options: Mapping[str, Any]) -> None:
    """Refuse unknown option names and values of the wrong type or range."""
    specs = declared if isinstance(declared, Mapping) else specs_of(declared)
    unknown = sorted(name for name in options if name not in specs)
    if unknown:
        accepted = ", ".join(sorted(specs)) or "none"
        raise UnsupportedOptionError(
            f"{provider} does not accept option(s) {', '.join(unknown)}; accepted options: {accepted}",
            provider=provider,
        )
    for name, value in options.items():
        specs[name].check(provider, name, value)
