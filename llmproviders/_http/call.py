"""One provider call (:class:`Call`) and one request with its response (:class:`Exchange`).

A :class:`Call` holds what lasts for the whole call, retries included: where to send
(``base_url``), through which proxy, with which timeouts, the deadline clock and the
abort flag. Its :meth:`Call.open` sends one request and yields an :class:`Exchange`
once the response's status is known to be good: everything that can go wrong comes
out as an error of the library's hierarchy, and nothing of one exchange outlives it.
The exchange's :meth:`Exchange.iter_bytes` gives the body as it arrives, with its
errors translated inside the iterator; a clean exit from the ``with`` block drains the
rest of the body so the connection can be reused.

Example usage::

    call = Call(Ylokh, base_url="http://127.0.0.1:8000", timeout=5, deadline=30)
    with call.open(url, headers=headers, json_body=body) as exchange:
        for data in iter_sse(exchange.iter_bytes(), provider="Ylokh"):
            ...
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import requests

from .._exceptions import LLMProvidersError
from .body import JSON_LIMIT, drain, open_reader, read_json
from .deadline import DEFAULT_TIMEOUT, Stopper, TimeoutArg, check_deadline, resolve_timeout, unwatch, watch
from .errors import (
    OFFLINE_HINT,
    SafeCause,
    reason,
    aborted_error,
    body_error,
    check_status,
    deadline_error,
    redirect_error,
    request_error,
)
from .headers import check_headers
from .session import CrossOrigin, forget_old_proxies, sending, session_for
from .urls import check_base_url, check_proxy, join_url, redact_url

__all__ = ["Call", "Exchange"]

log = logging.getLogger("llmproviders._http")


class Call:
    """One provider call's transport: target, proxy, timeouts, deadline and abort.

    ``owner`` is the provider class (its name is in every error; its session pools the
    connections). Everything is checked here, before any I/O. ``redact`` hides the
    call's secrets in what the transport takes in from the upstream (an error body
    that echoes a key); ``status_error`` is the provider's hook for a more precise
    error than a status alone gives (``Provider.status_error``). :meth:`abort` may be
    called from any thread to wake a read that is blocked on the socket.
    """

    def __init__(
        self,
        owner: type,
        *,
        base_url: Optional[str] = None,
        proxy: Optional[str] = None,
        timeout: TimeoutArg = None,
        default_timeout: Tuple[float, float] = DEFAULT_TIMEOUT,
        deadline: Optional[float] = None,
        redact: Optional[Callable[[str], str]] = None,
        status_error: Optional[Callable[[Any, Any], Optional[LLMProvidersError]]] = None,
    ) -> None:
        self.owner = owner
        self.provider = owner.__name__
        #: Seconds the whole call may take, retries included; the clock starts at the
        #: first request. None: no limit beyond the connect and read timeouts.
        self.deadline = check_deadline(deadline)
        self.base_url = check_base_url(base_url) if base_url is not None else None
        proxy = check_proxy(proxy) if proxy is not None else None
        self._proxies = {"http": proxy, "https": proxy} if proxy else None
        self.timeout = resolve_timeout(timeout, default_timeout)
        self._stopper = Stopper(self.deadline)
        self._redact = redact
        self._status_error = status_error
        # Asking a provider's real site, which is offline: transport errors say what to do.
        self._hint = OFFLINE_HINT if base_url is None and getattr(owner, "working", True) is False else ""

    @property
    def aborted(self) -> bool:
        return self._stopper.aborted

    def remaining(self) -> Optional[float]:
        """Seconds left before the deadline (None without one); starts the clock."""
        return self._stopper.remaining()

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (a retry's backoff); False if the call was aborted meanwhile."""
        return self._stopper.sleep(seconds)

    def abort(self) -> None:
        """Wake a read blocked in another thread; the stream then ends with an error.

        Safe to call from any thread, any number of times. ``response.close()`` from
        another thread does not wake a blocked read; shutting the socket down does.
        It also cuts a retry's backoff short.
        """
        self._stopper.abort()

    def url(self, default_url: str) -> str:
        """The URL to use for one of the protocol's endpoints."""
        return join_url(self.base_url, default_url)

    @contextmanager
    def open(
        self,
        url: str,
        *,
        headers: Dict[str, str],
        json_body: Any = None,
        data: Optional[bytes] = None,
        cookies: Any = None,
        method: str = "POST",
    ) -> Iterator["Exchange"]:
        """Send the request (POST unless ``method`` says otherwise) and yield its
        :class:`Exchange` once the status is known to be good.

        A non-2xx status raises a :class:`ResponseStatusError` subclass (a redirect to
        another origin, :class:`RedirectError`); a 2xx HTML page (bot protection, a
        proxy's error page) raises :class:`CloudflareError` or :class:`ProtocolError`.
        The response is closed when the block exits; after a clean exit the rest of
        the body is drained first, so the connection can be reused.
        """
        stopper = self._stopper
        if stopper.aborted:
            raise aborted_error(self.provider)
        check_headers(headers)
        watch(stopper)  # no-op without a deadline
        try:
            response = self._send(method, url, headers=headers, json_body=json_body, data=data, cookies=cookies)
            exchange = Exchange(self, response)
            try:
                if stopper.aborted:  # aborted just as the headers came in
                    raise aborted_error(self.provider)
                if stopper.expired:  # the watchdog cut the status line or headers short
                    raise deadline_error(self.provider, self.deadline, started=False)
                try:
                    check_status(
                        response,
                        provider=self.provider,
                        redact=self._redact,
                        classify=self._status_error,
                        proxied=self._proxies is not None,
                    )
                except LLMProvidersError:
                    if stopper.aborted:  # the error body's read was cut short on purpose: say so
                        raise aborted_error(self.provider) from None
                    if stopper.past_deadline():
                        raise deadline_error(self.provider, self.deadline, started=False) from None
                    raise
                yield exchange
                exchange._drain()  # the protocol is done (no exception, no early stop)
            finally:
                exchange._reads = None
                response.close()
        finally:
            unwatch(stopper)

    # -- internals ----------------------------------------------------------------

    def _send(
        self, method: str, url: str, *, headers: Dict[str, str], json_body: Any, data: Optional[bytes], cookies: Any
    ) -> requests.Response:
        debug = log.isEnabledFor(logging.DEBUG)
        safe_url = redact_url(url, query_keys=True) if debug else ""
        if debug:
            log.debug("%s: %s %s", self.provider, method, safe_url)
        started = time.monotonic()
        timeout = self.timeout
        stopper = self._stopper
        left = stopper.remaining()
        if left is not None:
            if left <= 0:
                raise deadline_error(self.provider, self.deadline, started=False)
            timeout = (min(timeout[0], left), min(timeout[1], left))
        session = session_for(self.owner)  # looked up per request: a forked child gets its own
        failure: Optional[Tuple[LLMProvidersError, BaseException]] = None
        try:
            with sending(stopper):
                response = session.request(
                    method,
                    url,
                    headers=headers,
                    json=json_body,
                    data=data,
                    cookies=cookies,
                    proxies=self._proxies,
                    timeout=timeout,
                    stream=True,
                    verify=True,
                )
        except CrossOrigin as exc:
            raise redirect_error(
                provider=self.provider,
                status_code=exc.status_code,
                url=exc.url,
                location=exc.location,
                headers=exc.headers,
            ) from None
        except requests.exceptions.RequestException as exc:
            error: LLMProvidersError
            if stopper.aborted:
                error = aborted_error(self.provider)
            elif stopper.past_deadline():
                error = deadline_error(self.provider, self.deadline, started=False)
            else:
                error = request_error(exc, provider=self.provider, url=url, timeout=self.timeout, hint=self._hint)
            if self._redact is None:  # no secrets in the URL: keep requests' error as the cause
                raise error from exc
            # requests' error shows the URL: raised outside this block, with a cause that does not
            failure = (error, SafeCause(f"{type(exc).__name__}: {reason(exc)}"))
        finally:
            if self._proxies:
                forget_old_proxies(session, url)
        if failure is not None:
            raise failure[0] from failure[1]
        if debug:
            log.debug(
                "%s: %s %s %s in %.0f ms",
                self.provider,
                response.status_code,
                method,
                safe_url,
                (time.monotonic() - started) * 1000,
            )
        return response


class Exchange:
    """One request and its response, as :meth:`Call.open` yields it.

    ``status_code``, ``headers``, ``cookies`` and ``url`` (redacted) describe the
    response; :meth:`iter_bytes` reads its body, :meth:`read_json` a whole JSON body.
    """

    def __init__(self, call: Call, response: requests.Response) -> None:
        self.status_code: int = response.status_code
        self.headers = response.headers
        self.cookies = response.cookies
        self._call = call
        self._response = response
        self._reads: Optional[Iterator[bytes]] = None  # the body reader, once asked for

    @property
    def url(self) -> str:
        """The URL of the response (after same-origin redirects), redacted."""
        return redact_url(self._response.url or "", query_keys=True)

    def iter_bytes(self) -> Iterator[bytes]:
        """The body, each byte as soon as it arrives (at most 64 KiB at a time).

        Errors come out as the library's, from inside the iterator: the connection
        broke or timed out (:class:`StreamInterruptedError`), the deadline passed or
        the call was aborted (likewise, saying so), a compressed body was corrupt
        (:class:`ProtocolError`). Asking twice gives the same reader.
        """
        if self._reads is None:
            self._reads = open_reader(self._response, translate=self._read_error, finish=self._check_end)
        return self._reads

    def read_json(self, *, limit: int = JSON_LIMIT) -> Any:
        """Read a whole (non-streamed) body, at most ``limit`` bytes, and decode it as JSON."""
        return read_json(self.iter_bytes(), provider=self._call.provider, limit=limit, redact=self._call._redact)

    def _read_error(self, exc: BaseException) -> LLMProvidersError:
        """The library's error for a failed read of the body."""
        call = self._call
        stopper = call._stopper
        if stopper.aborted:  # the socket was shut down on purpose: say so
            return aborted_error(call.provider)
        if stopper.past_deadline():
            return deadline_error(call.provider, call.deadline, started=True)
        return body_error(exc, provider=call.provider, read_timeout=call.timeout[1])

    def _check_end(self) -> None:
        """At the end of a body without framing of its own: an abort or a deadline shuts
        the socket down, which looks like that end; say what it was."""
        stopper = self._call._stopper
        if stopper.aborted:
            raise aborted_error(self._call.provider)
        if stopper.expired:
            raise deadline_error(self._call.provider, self._call.deadline, started=True)

    def _drain(self) -> None:
        drain(self._reads, self._response.raw, remaining=self._call._stopper.remaining)
