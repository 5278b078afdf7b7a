"""Status checks and error translation: every failure of ``requests``, ``urllib3`` and
``http.client`` becomes an error of the library's hierarchy here, with a message that
says what happened, names the provider, and never shows credentials, query values,
request headers or bodies. A non-2xx status (or a 2xx HTML page) is described from a
short summary of its body (a JSON error's message, an HTML page's title and text);
``Retry-After`` is parsed; :func:`excerpt` shortens frames for messages.
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import json
import math
import re
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import requests
import requests.structures
import urllib3.exceptions

from .._exceptions import (
    AuthenticationError,
    CloudflareError,
    InvalidArgumentError,
    LLMProvidersError,
    ProtocolError,
    RateLimitError,
    RedirectError,
    RequestTimeoutError,
    ResponseStatusError,
    StreamInterruptedError,
    TransportError,
)
from .urls import host_of, redact_url

__all__ = [
    "FramingError",
    "SafeCause",
    "excerpt",
    "parse_retry_after",
    "check_status",
    "request_error",
    "body_error",
    "deadline_error",
    "aborted_error",
    "redirect_error",
    "reason",
]

ERROR_BODY_LIMIT = 65536  # how much of an error body is read to describe it
EXCERPT_LENGTH = 300  # how much of it an error message shows

#: Added to a transport error when a provider's real site, which is offline, was asked.
OFFLINE_HINT = (
    "; the site is offline: run the embedded emulator (`python -m llmproviders emulator`, "
    "or llmproviders.testing.Emulator) and point LLMPROVIDERS_BASE_URL (or base_url=) at it"
)


class SafeCause(Exception):
    """Stands in for a ``requests`` error as the cause of ours when the request's URL
    carries secrets (a password, query values), which that error's message shows."""


class FramingError(http.client.HTTPException):
    """Bytes that break HTTP/1.1's framing (a chunk-size line, too many interim
    responses). Its message is ours and safe to show; reported like a cut connection."""


def excerpt(data: Union[bytes, str], limit: int = 120) -> str:
    """A short, printable excerpt of a frame for error messages."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` in seconds (from seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # "-0000": no zone given; HTTP dates are GMT
            when = when.replace(tzinfo=datetime.timezone.utc)
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# -- status checks -----------------------------------------------------------------


def check_status(
    response: requests.Response,
    *,
    provider: str,
    redact: Optional[Callable[[str], str]] = None,
    classify: Optional[Callable[[ResponseStatusError, Any], Optional[LLMProvidersError]]] = None,
    proxied: bool = False,
) -> None:
    """Raise the library's error for a non-2xx status or a 2xx HTML page; return
    quietly for a usable response (whose body is then left unread). ``redact`` hides
    the call's secrets in the body as it is taken in (a server may echo a key).
    ``classify`` (the provider's) may name a more precise error for a status error
    from its decoded JSON body (a context overflow, say); None keeps the generic one.
    ``proxied``: the request went through a proxy, which may be who answered."""
    status = response.status_code
    content_type = response.headers.get("Content-Type", "").lower()
    if 200 <= status < 300 and not content_type.startswith("text/html"):
        return
    text = _read_error_body(response).decode("utf-8", "replace")
    if redact is not None:
        text = redact(text)
    html = content_type.startswith("text/html") or text.lstrip()[:15].lower().startswith(("<!doctype html", "<html"))
    summary = _summarize(text, html=html)
    host = host_of(response.url or "")
    if proxied:  # the proxy may have answered itself (a 502 when it cannot reach the host)
        host += " (through the proxy)"
    headers = response.headers
    if redact is not None:  # a server may echo a key in a header too
        headers = requests.structures.CaseInsensitiveDict({name: redact(value) for name, value in headers.items()})
    common: Dict[str, Any] = dict(
        provider=provider,
        status_code=status,
        body=summary,
        headers=headers,
        url=redact_url(response.url or "", query_keys=True),
    )
    if _is_challenge(response, text):
        raise CloudflareError(
            f"{provider}: {host} answered with a Cloudflare bot-protection challenge "
            f"(HTTP {status}) instead of the API; it needs a browser session. Try again "
            "later, from another network or through a proxy (proxy=...)",
            **common,
        )
    if 200 <= status < 300:
        raise ProtocolError(
            f"{provider}: {host} answered HTTP {status} with an HTML page, not the API: {summary!r}",
            provider=provider,
            frame=summary,
        )
    reason_text = f"HTTP {status} {response.reason or ''}".rstrip()
    detail = f": {summary}" if summary else ""
    error: ResponseStatusError
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
        error = RateLimitError(
            f"{provider}: rate limited by {host} ({reason_text}){hint}{detail}", retry_after=retry_after, **common
        )
    elif status == 401:
        error = AuthenticationError(f"{provider}: {host} refused the credentials ({reason_text}){detail}", **common)
    else:
        error = ResponseStatusError(f"{provider}: {host} answered {reason_text}{detail}", **common)
    if classify is not None and not html:
        better = classify(error, _json_or_none(text))
        if better is not None:
            raise better
    raise error


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _read_error_body(response: requests.Response) -> bytes:
    """At most :data:`ERROR_BODY_LIMIT` bytes of an error body. Whatever is left unread
    stays on the connection, which ``response.close()`` then drops (never pools)."""
    try:
        return response.raw.read(ERROR_BODY_LIMIT, decode_content=True) or b""
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError):
        return b""  # the status alone still says what happened


# (compiled on first use: re caches them)
_TAG = r"<(head|script|style)\b.*?</\1>|<[^>]+>"
_TITLE = r"<title[^>]*>(.*?)</title>"


def _summarize(text: str, *, html: bool) -> str:
    """The part of an error body worth showing: JSON's message, HTML's title and text."""
    text = text[:8192]  # enough to describe it; the regexes below stay linear-ish
    if html:
        title = re.search(_TITLE, text, re.S | re.I)
        body = re.sub(r"\s+", " ", re.sub(_TAG, " ", text, flags=re.S | re.I)).strip()
        if title:
            heading = re.sub(r"\s+", " ", title.group(1)).strip()
            body = body if body.startswith(heading) else f"{heading}: {body}".rstrip(": ")
        text = body
    else:
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            payload = None
        message = _json_message(payload)
        text = message if message else re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= EXCERPT_LENGTH else text[: EXCERPT_LENGTH - 1] + "…"


def _json_message(payload: Any, depth: int = 0) -> Optional[str]:
    if isinstance(payload, dict) and depth < 8:
        for key in ("error", "message", "detail"):
            value = payload.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):
                inner = _json_message(value, depth + 1)
                if inner:
                    return inner
    return None


_CHALLENGE_MARKERS = ("just a moment", "challenge-platform", "cf-chl", "attention required! | cloudflare")


def _is_challenge(response: requests.Response, text: str) -> bool:
    headers = response.headers
    if headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    if "cloudflare" not in headers.get("Server", "").lower() and "__cf_chl" not in text:
        return False
    lowered = text[:20000].lower()
    return any(marker in lowered for marker in _CHALLENGE_MARKERS)


# -- translating failures ----------------------------------------------------------


def request_error(
    exc: requests.exceptions.RequestException,
    *,
    provider: str,
    url: str,
    timeout: Tuple[float, float],
    hint: str = "",
) -> LLMProvidersError:
    """The library's error for a request that got no response. ``hint`` is appended
    to the message of a :class:`TransportError` (see :data:`OFFLINE_HINT`)."""
    safe_url = redact_url(url, query_keys=True)
    where = dict(provider=provider, url=safe_url)
    host = host_of(url)
    if isinstance(exc, requests.exceptions.Timeout):
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return RequestTimeoutError(
                f"{provider}: {host} sent no response within {timeout[1]:g} s (read timeout){hint}", **where
            )
        return RequestTimeoutError(
            f"{provider}: could not connect to {host} within {timeout[0]:g} s (connect timeout){hint}", **where
        )
    if isinstance(exc, requests.exceptions.InvalidSchema):
        if "SOCKS" in str(exc):
            return InvalidArgumentError("SOCKS proxies need PySocks: pip install 'llmproviders[socks]'")
        return InvalidArgumentError(f"{provider}: unsupported URL scheme in {safe_url}")
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        last = exc.response
        status = last.status_code if last is not None else 0
        location = redact_url(last.headers.get("Location", ""), query_keys=True) if last is not None else ""
        return RedirectError(
            f"{provider}: {host} kept redirecting within its origin (more than {len(last.history) if last is not None else 'the allowed number of'} "
            "redirects); stopped following",
            provider=provider,
            status_code=status,
            url=safe_url,
            location=location,
        )
    if _malformed_response(exc):
        return ProtocolError(f"{provider}: {host} sent a malformed response ({reason(exc)})", provider=provider)
    if isinstance(exc, requests.exceptions.ProxyError):
        return TransportError(f"{provider}: the proxy failed ({reason(exc)})", **where)
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportError(f"{provider}: TLS with {host} failed ({reason(exc)}){hint}", **where)
    return TransportError(f"{provider}: could not reach {host} ({reason(exc)}){hint}", **where)


def _malformed_response(exc: BaseException) -> bool:
    """Whether ``exc`` came of a response head the server got wrong (not of the network)."""
    seen = set()
    current: Optional[BaseException] = exc
    stack: List[Optional[BaseException]] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (FramingError, urllib3.exceptions.InvalidHeader)):
            return True
        stack += [getattr(current, "reason", None), current.__cause__, current.__context__]
        stack += [arg for arg in current.args if isinstance(arg, BaseException)]
    return False


def redirect_error(
    *, provider: str, status_code: int, url: str, location: str, headers: Any
) -> RedirectError:
    """A redirect to another origin, which is not followed: the request's headers
    (keys, signatures, nonces) and body must not go to a host the caller did not name."""
    shown = redact_url(location, query_keys=True) if location else "an unreadable Location"
    safe_headers = requests.structures.CaseInsensitiveDict(headers or {})
    if "Location" in safe_headers:
        safe_headers["Location"] = shown
    return RedirectError(
        f"{provider}: {host_of(url)} redirected (HTTP {status_code}) to another origin, {shown}; not followed, "
        "so the request's headers and body stay with the host you named. Point base_url at the final server",
        provider=provider,
        status_code=status_code,
        headers=safe_headers,
        url=redact_url(url, query_keys=True),
        location=shown,
    )


def body_error(exc: BaseException, *, provider: str, read_timeout: float) -> LLMProvidersError:
    """The library's error for a failure while reading a body."""
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, socket.timeout)):
        return StreamInterruptedError(
            f"{provider}: no data for {read_timeout:g} s (read timeout); the stream was cut short",
            provider=provider,
        )
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return ProtocolError(f"{provider}: the body could not be decompressed ({reason(exc)})", provider=provider)
    return StreamInterruptedError(
        f"{provider}: the connection broke before the reply was complete ({reason(exc)})", provider=provider
    )


def deadline_error(provider: str, deadline: Optional[float], *, started: bool) -> LLMProvidersError:
    """The call's ``deadline=`` passed: before the response (:class:`RequestTimeoutError`)
    or while its body streamed (:class:`StreamInterruptedError`)."""
    message = f"{provider}: the call's deadline of {deadline:g} s passed"
    if started:
        return StreamInterruptedError(message + "; the stream was cut short", provider=provider)
    return RequestTimeoutError(message + " before a response", provider=provider)


def aborted_error(provider: str) -> StreamInterruptedError:
    return StreamInterruptedError(f"{provider}: the call was aborted", provider=provider)


def reason(exc: BaseException) -> str:
    """The root cause of a transport error in a few words, never its URLs or credentials."""
    try:
        return _find_reason(exc)
    except Exception:  # describing an error must never raise one of its own
        return type(exc).__name__


def _find_reason(exc: BaseException) -> str:
    seen = set()
    stack = [exc]
    found: Optional[str] = None
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NameResolutionError):
            return "the host name could not be resolved"
        if isinstance(current, FramingError):
            return str(current)
        if isinstance(current, urllib3.exceptions.InvalidHeader):
            return "malformed response headers"
        if isinstance(current, OSError) and current.strerror:
            found = current.strerror
        elif isinstance(current, urllib3.exceptions.ReadTimeoutError):
            found = found or "read timed out"
        elif isinstance(current, http.client.IncompleteRead):
            # urllib3's subclasses keep a byte count in .partial; http.client keeps the bytes
            got = current.partial if isinstance(current.partial, int) else len(current.partial)
            found = found or f"body ended early, after {got} bytes of a chunk or body"
        elif isinstance(current, http.client.RemoteDisconnected):
            found = found or "the server closed the connection without a response"
        for nested in (getattr(current, "reason", None), current.__cause__, current.__context__, *current.args):
            if isinstance(nested, BaseException):
                stack.append(nested)
    return found or type(exc).__name__
