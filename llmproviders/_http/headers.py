"""Request headers: :func:`check_headers` refuses, before any I/O, what HTTP/1.1 cannot
carry or would carry wrongly: names that are not RFC 9110 tokens, values with line
breaks, NUL or other control characters (header injection), values that are not
Latin-1 (``http.client`` would raise ``UnicodeEncodeError`` mid-request), and values
that start or end with whitespace. The error never shows a value (values are where
keys and signatures live), nor a name that is not a valid token (a whole
``"Authorization: Bearer ..."`` line passed as a name would carry its value with it).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from .._exceptions import InvalidArgumentError

__all__ = ["check_headers", "header_problem"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110, 5.6.2
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")  # controls but HTAB; beyond Latin-1


def header_problem(name: Any, value: Any) -> Optional[str]:
    """Why ``name: value`` cannot be sent as an HTTP/1.1 header (never quoting the
    value, nor an invalid name), or None."""
    if not isinstance(name, str) or not isinstance(value, str):
        return "header names and values must be strings"
    if not _TOKEN.fullmatch(name):
        return (
            "a header name is not a valid HTTP field name (RFC 9110 allows letters, digits and "
            "!#$%&'*+-.^_`|~ only: no spaces, colons or line breaks)"
        )
    bad = _BAD_VALUE.search(value)
    if bad is not None:
        char = bad.group()
        if char in "\r\n\x00":
            problem = "contains a line break or NUL, which would inject header lines"
        elif ord(char) > 0xFF:
            problem = f"has a character outside Latin-1 at position {bad.start()}, which HTTP/1.1 cannot carry"
        else:
            problem = f"has a control character at position {bad.start()}"
        return f"the value of header {name!r} {problem} (the value is not shown)"
    if value[:1].isspace() or value[-1:] in (" ", "\t"):  # (requests refuses any leading whitespace)
        return f"the value of header {name!r} starts or ends with whitespace (the value is not shown)"
    return None


def check_headers(headers: Any, *, what: str = "headers") -> None:
    """Raise :class:`InvalidArgumentError` unless ``headers`` is a mapping of header
    names (RFC 9110 tokens) to values HTTP/1.1 can send as they are.

    ``what`` names the argument in the message (``"extra_headers"``, ``"api_key"``).
    """
    if not isinstance(headers, Mapping):
        raise InvalidArgumentError(f"{what} must be a dict of str header names to str values")
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem is not None:
            raise InvalidArgumentError(f"{what}: {problem}")
