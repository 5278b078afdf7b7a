"""The exception hierarchy: every error this library raises on purpose.

Everything derives from :class:`LLMProvidersError`, so ``except LLMProvidersError``
catches all of it. Errors about the caller's input also derive from the matching
builtin (``ValueError``, ``TypeError``, ``LookupError``), so code that already
catches those keeps working::

    LLMProvidersError
    ├── InvalidArgumentError          (ValueError)  bad argument (base_url, timeout, proxy), before any I/O
    │   ├── InvalidMessagesError                    bad ``messages``
    │   └── ModelNotSupportedError                  unknown model for this provider
    ├── UnsupportedOptionError        (TypeError)   unknown keyword option for this provider
    ├── ProviderNotFoundError         (LookupError) unknown provider name
    ├── RetryProviderError                          every provider of a RetryProvider failed
    ├── ContextWindowExceededError                  the prompt does not fit the model's context (never retried)
    ├── ConversationBusyError         (RuntimeError) a Conversation was used while its reply streams
    ├── TransportError                              no usable response: connect/TLS/proxy failure
    │   └── RequestTimeoutError                     connect or read timeout before the response
    ├── ResponseStatusError                         non-2xx status (``status_code``, ``body``)
    │   ├── AuthenticationError                     401
    │   ├── RateLimitError                          429 (``retry_after``)
    │   ├── CloudflareError                         a bot-protection challenge page
    │   └── RedirectError                           a redirect to another origin, not followed (``location``)
    ├── StructuredOutputError         (ValueError)  ``stream.json()``: the reply is not JSON (``text``)
    └── StreamError                                 the reply itself went wrong (``partial``)
        ├── ProtocolError                           a malformed frame or body from upstream
        │   └── ReplyMismatchError                  the final reply contradicts the streamed text
        ├── ResponseError                           the upstream reported an error inside the stream
        ├── EmptyResponseError                      the reply ended without any text
        └── StreamInterruptedError                  the stream broke before its end

Constructors take the message positionally and everything else by keyword. When a
call was retried, the error raised is the last attempt's, and ``attempts`` lists the
errors of the attempts before it (``str(error)`` then says how many there were and why). Errors
never include request headers or bodies (they may hold credentials); they carry the
provider name and, for status errors, a short excerpt of the upstream's body.

Every error survives :mod:`pickle` (a process pool or a cluster sends errors back
pickled) with its type, its message and its fields, whatever its constructor takes: see
:meth:`LLMProvidersError.__reduce__`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type

__all__ = [
    "LLMProvidersError",
    "InvalidArgumentError",
    "InvalidMessagesError",
    "ModelNotSupportedError",
    "UnsupportedOptionError",
    "ProviderNotFoundError",
    "TransportError",
    "RequestTimeoutError",
    "ResponseStatusError",
    "AuthenticationError",
    "RateLimitError",
    "CloudflareError",
    "RedirectError",
    "StructuredOutputError",
    "StreamError",
    "ProtocolError",
    "ReplyMismatchError",
    "ResponseError",
    "EmptyResponseError",
    "StreamInterruptedError",
    "RetryProviderError",
    "ContextWindowExceededError",
    "ConversationBusyError",
]


class LLMProvidersError(Exception):
    """Root of every error raised by llmproviders.

    ``provider`` names the provider involved, when there is one.
    """

    def __init__(self, message: str, *, provider: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        #: Errors of earlier attempts of the same call, oldest first (see retries).
        self.attempts: List["LLMProvidersError"] = []

    def __str__(self) -> str:
        if not self.attempts:
            return self.message
        return f"{self.message} {_attempts_summary(self, self.attempts)}"

    def __reduce__(self) -> Tuple[Any, ...]:
        """Pickle as the class, ``args`` and the fields, without calling ``__init__``.

        Python's default rebuilds an exception as ``cls(*args)``, which fails for
        constructors with required keyword-only arguments (``status_code=``). Here the
        instance is rebuilt from ``args`` and then given its fields: every public
        attribute, every public property that has a setter (so a lazily computed value
        such as ``partial`` is pickled as its value, not as whatever computes it), and
        ``__notes__``. Private attributes (``_name``) are left out: they may hold what a
        pickle cannot carry (a file, a lock). ``__cause__`` is kept when it is an error
        of this library; any other cause (a ``requests`` error holding a response and
        its socket) is dropped, as pickle does for every exception's cause.
        """
        return (_rebuild, (type(self), self.args, _fields(self)))


class InvalidArgumentError(LLMProvidersError, ValueError):
    """An argument is unusable (``base_url``, ``timeout``, ``proxy``, ...); nothing was sent."""


class InvalidMessagesError(InvalidArgumentError):
    """``messages`` is not a non-empty list of ``{"role": ..., "content": str}`` dicts."""


class ModelNotSupportedError(InvalidArgumentError):
    """The provider does not serve the requested model; ``models`` lists the ones it does."""

    def __init__(
        self,
        message: str,
        *,
        provider: Optional[str] = None,
        model: Optional[str] = None,
        models: Sequence[str] = (),
    ) -> None:
        super().__init__(message, provider=provider)
        self.model = model
        self.models = list(models)


class UnsupportedOptionError(LLMProvidersError, TypeError):
    """A keyword option the provider does not understand (nothing is sent blindly)."""


class ProviderNotFoundError(LLMProvidersError, LookupError):
    """No provider is registered under that name; ``known`` lists the registered ones."""

    def __init__(self, message: str, *, known: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.known = list(known)


class TransportError(LLMProvidersError):
    """The request got no usable response: connection refused, DNS, TLS or proxy failure.

    ``url`` is the request URL (without credentials).
    """

    def __init__(
        self, message: str, *, provider: Optional[str] = None, url: Optional[str] = None
    ) -> None:
        super().__init__(message, provider=provider)
        self.url = url


class RequestTimeoutError(TransportError):
    """Connecting, or waiting for the response headers, took longer than the timeout."""


class ResponseStatusError(LLMProvidersError):
    """The upstream answered with a non-2xx status.

    ``status_code`` is the HTTP status, ``body`` a short excerpt of the response body
    (whitespace collapsed), ``headers`` the response headers.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: Optional[str] = None,
        status_code: int,
        body: str = "",
        headers: Optional[Any] = None,
        url: Optional[str] = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.status_code = status_code
        self.body = body
        self.headers = headers if headers is not None else {}
        self.url = url


class AuthenticationError(ResponseStatusError):
    """401: the upstream wants credentials it did not get (or rejected the signature)."""


class RateLimitError(ResponseStatusError):
    """429: too many requests. ``retry_after`` is the server's wait hint in seconds, or None."""

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class CloudflareError(ResponseStatusError):
    """The upstream answered with a bot-protection challenge page instead of the API."""


class RedirectError(ResponseStatusError):
    """A 3xx redirect to another origin (scheme, host or port), which is not followed:
    the request's headers (API keys, signatures, nonces) and body would go to a host
    the caller never named. Also raised when same-origin redirects do not end.
    ``location`` is the target, without credentials and with query values redacted.
    Not retried."""

    def __init__(self, message: str, *, location: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.location = location


class StructuredOutputError(LLMProvidersError, ValueError):
    """``stream.json()``: the reply's text is not the JSON asked for. ``text`` keeps it."""

    def __init__(self, message: str, *, provider: Optional[str] = None, text: str = "") -> None:
        super().__init__(message, provider=provider)
        self.text = text


class StreamError(LLMProvidersError):
    """The reply went wrong after the response started.

    ``partial`` is the text already delivered to the caller before the error, exactly
    as it was yielded (empty if nothing was). With ``stream=False`` nothing is yielded
    before the end, so ``partial`` then holds the text received before the error. It is
    read from the stream's record when first asked for, so an error after a very long
    reply costs no memory unless ``partial`` is used.
    """

    def __init__(self, message: str, *, provider: Optional[str] = None, partial: Optional[str] = None) -> None:
        super().__init__(message, provider=provider)
        self._partial: Optional[str] = partial
        self._partial_source: Any = None  # a record of the delivered text (see Stream)

    @property
    def partial(self) -> str:
        if self._partial is None:
            source, self._partial_source = self._partial_source, None
            self._partial = source.text() if source is not None else ""
        return self._partial

    @partial.setter
    def partial(self, value: str) -> None:
        self._partial = value
        self._partial_source = None


class ProtocolError(StreamError):
    """The upstream sent something its protocol does not allow (a malformed frame, HTML,
    invalid UTF-8). ``frame`` holds the offending bytes or text, shortened."""

    def __init__(self, message: str, *, frame: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.frame = frame


class ReplyMismatchError(ProtocolError):
    """The upstream's final, authoritative reply contradicts the text it streamed.

    ``partial`` is what was streamed (and yielded); ``reply`` is the final reply. The
    caller decides which to keep; the library never swaps text silently.
    """

    def __init__(self, message: str, *, reply: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reply = reply


class ResponseError(StreamError):
    """The upstream reported an error inside a successful (2xx) response, such as an
    OpenAI-style ``{"error": {...}}`` event. ``error`` holds the decoded payload."""

    def __init__(self, message: str, *, error: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.error = error


class EmptyResponseError(StreamError):
    """The reply ended without any text and without the protocol saying that an empty
    reply is what it meant (an explicit finish). Retried like a failed connection."""


class StreamInterruptedError(StreamError):
    """The stream stopped before the reply was complete: the connection dropped, the
    server went quiet past the read timeout, or the body ended without the protocol's
    end marker. ``partial`` holds everything delivered before the break."""


class RetryProviderError(LLMProvidersError):
    """Every provider of a :class:`RetryProvider` failed before yielding any text.

    ``errors`` maps each provider's name to its exception, in the order tried.
    """

    def __init__(self, message: str, *, errors: Mapping[str, BaseException]) -> None:
        super().__init__(message)
        self.errors = dict(errors)


def _fields(error: LLMProvidersError) -> Dict[str, Any]:
    """What :meth:`LLMProvidersError.__reduce__` pickles besides the class and ``args``."""
    fields = {
        name: value
        for name, value in vars(error).items()
        if not name.startswith("_") or (name.startswith("__") and name.endswith("__"))
    }
    for cls in type(error).__mro__:
        for name, attribute in vars(cls).items():
            if isinstance(attribute, property) and attribute.fset is not None and not name.startswith("_"):
                fields[name] = getattr(error, name)
    cause = error.__cause__
    if isinstance(cause, LLMProvidersError):
        fields["__cause__"] = cause
        fields["__suppress_context__"] = error.__suppress_context__
    return fields


def _rebuild(cls: Type[LLMProvidersError], args: Tuple[Any, ...], fields: Dict[str, Any]) -> LLMProvidersError:
    """Unpickle an error: an instance of ``cls`` with ``args``, given its ``fields``."""
    error = cls.__new__(cls, *args)
    error.args = args
    for name, value in fields.items():
        setattr(error, name, value)  # through a property's setter where there is one
    return error


class ContextWindowExceededError(LLMProvidersError):
    """The server refused the request because it does not fit the model's context window
    (llama.cpp's ``exceed_context_size_error``, OpenAI's ``context_length_exceeded``).
    Never retried, whatever the HTTP status: asking again cannot help.

    ``n_prompt_tokens`` and ``n_ctx`` are the prompt's size and the context's, where the
    server said them; ``status_code`` is the HTTP status (None inside a stream);
    ``error`` the server's error object.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: Optional[str] = None,
        n_prompt_tokens: Optional[int] = None,
        n_ctx: Optional[int] = None,
        status_code: Optional[int] = None,
        error: Any = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.n_prompt_tokens = n_prompt_tokens
        self.n_ctx = n_ctx
        self.status_code = status_code
        self.error = error


class ConversationBusyError(LLMProvidersError, RuntimeError):
    """A :class:`~llmproviders.Conversation` was asked to send (or to change its
    history) while its last reply is still open: read that reply to its end, or
    ``close()`` it, first."""


def _attempts_summary(error: LLMProvidersError, failures: Sequence[BaseException]) -> str:
    """``[3 attempts; earlier: 1) ...; 2) ...]``: what the earlier attempts of a call ran into."""
    total = len(failures) + 1
    final = _one_line(error, error.message)
    earlier = [_one_line(e, e.message if isinstance(e, LLMProvidersError) else str(e)) for e in failures if e is not error]
    if all(line == final for line in earlier):
        return f"[{total} attempts, all failed the same way]"
    reasons = "; ".join(f"{n}) {line}" for n, line in enumerate(earlier, 1))
    return f"[{total} attempts; earlier: {reasons}]"


def _one_line(error: BaseException, text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    prefix = f"{getattr(error, 'provider', None)}: "
    if text.startswith(prefix):
        text = text[len(prefix) :]
    return text if len(text) <= limit else text[: limit - 1] + "…"
