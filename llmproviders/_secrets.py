"""The secrets of one call, and hiding them in whatever is taken in from the upstream.

A call's secrets are its API key, the values of its extra request headers, the password
and query values of its ``base_url`` and the credentials of its proxy. An upstream may
echo any of them (an error body that repeats the request, a proxy's error page), so
everything the library takes from a reply into an error (a frame, an error payload, a
body excerpt) passes through :meth:`Secrets.redact` where it is taken in. Nothing is
rewritten afterwards.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["Secrets", "MASK"]

MASK = "[redacted]"
MIN_SECRET = 4  # shorter values are not hidden: masking every "1" would garble messages
MAX_DEPTH = 64  # how deep redact_value goes into a decoded JSON value


class Secrets:
    """Strings never to show; :meth:`redact` replaces each with ``[redacted]``."""

    __slots__ = ("values",)

    def __init__(self, values: Iterable[str] = ()) -> None:
        unique = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET}
        self.values: Tuple[str, ...] = tuple(sorted(unique, key=len, reverse=True))  # longest first

    @classmethod
    def of(cls, options: Mapping[str, Any], base_url: Optional[str], proxy: Optional[str]) -> "Secrets":
        """The secrets of a call with these options, target and proxy."""
        values = []
        key = options.get("api_key")
        if isinstance(key, str):
            values.append(key)
        headers = options.get("extra_headers")
        if isinstance(headers, Mapping):
            values.extend(v for v in headers.values() if isinstance(v, str))
        for url in (base_url, proxy):
            values.extend(url_secrets(url))
        return cls(values)

    def __bool__(self) -> bool:
        return bool(self.values)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``[redacted]``."""
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def redact_value(self, value: Any, depth: int = 0) -> Any:
        """A copy of a decoded JSON value with every string redacted (what is nested more
        than :data:`MAX_DEPTH` deep is replaced by a note, rather than recursed into)."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
            return "(nested too deeply to show)"
        if isinstance(value, dict):
            return {
                self.redact(k) if isinstance(k, str) else k: self.redact_value(v, depth + 1) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.redact_value(v, depth + 1) for v in value]
        return value

    def redact_headers(self, headers: Mapping[str, str]) -> Dict[str, str]:
        """A plain copy of response headers, values redacted."""
        return {name: self.redact(str(value)) for name, value in headers.items()}


def url_secrets(url: Optional[str]) -> Tuple[str, ...]:
    """The password, user name and query values of ``url`` (raw and unquoted)."""
    if not isinstance(url, str) or not url:
        return ()
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ()
    found = []
    for value in (parts.password, parts.username):
        if value:
            found += [value, unquote(value)]
    for _, value in parse_qsl(parts.query, keep_blank_values=False):
        found.append(value)
    for raw in parts.query.split("&"):
        if "=" in raw:
            found.append(raw.split("=", 1)[1])
    return tuple(found)
