"""What the emulator records and what scripts it: request headers, recorded
requests and plans.

Everything here is shared between the server's handler threads and the test's
thread, so the mutable parts sit behind locks and completion is signalled with
``threading.Event``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

FRAMINGS = ("chunked", "close")
"""How a streamed body is delimited: HTTP/1.1 chunks, or the end of the connection."""

OUTCOMES = ("complete", "client-disconnected", "fault-disconnect", "aborted")
"""How a response can end; see :attr:`Plan.outcome`."""


class Headers(Mapping[str, str]):
    """Read-only request headers with case-insensitive look-ups.

    Names are stored and iterated lower-cased; a header sent more than once has its
    values joined with ``", "``. ``headers["X-Signature"]`` and
    ``headers["x-signature"]`` are the same look-up; a missing name raises
    ``KeyError`` (use ``.get()`` for a default).
    """

    def __init__(self, items: Iterable[Tuple[str, str]] = ()) -> None:
        data: Dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            data[key] = f"{data[key]}, {value}" if key in data else value
        self._data = data

    def __getitem__(self, name: str) -> str:
        return self._data[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Headers({self._data!r})"


@dataclass(eq=False)
class RecordedRequest:
    """One request the emulator received, recorded before it was answered.

    ``path`` excludes the query string, which is in ``query`` (without the ``?``).
    ``json`` is the parsed body, or ``None`` when the body is not JSON, and then
    ``json_error`` says why (empty, not JSON, nested too deeply to parse). ``plan`` is
    the :class:`Plan` that scripted the answer, if any. ``status`` is the status
    code that was (or is being) sent (``None`` when the connection was dropped
    without an answer). ``outcome`` stays ``None`` until the response has ended,
    then holds one of :data:`OUTCOMES` and ``done`` is set.

    For the four chat endpoints, once the request is valid: ``question`` is the
    question the reply quotes (see :func:`~llmproviders.testing.question_for`),
    ``attempt`` how many requests with the same question came before this one
    (since start or ``Emulator.reset()``), and ``fault`` the failure the flaky
    configuration imposed on it (``"500"``, ``"429"``, ``"drop"``...) or ``None``.
    """

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    json: Any = None
    json_error: Optional[str] = None
    plan: Optional[Plan] = None
    status: Optional[int] = None
    question: Optional[str] = None
    attempt: Optional[int] = None
    fault: Optional[str] = None
    outcome: Optional[str] = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait(self, timeout: float = 5.0) -> str:
        """Block until the response to this request has ended; return its outcome.

        Raises ``TimeoutError`` if it has not ended within ``timeout`` seconds.
        """
        if not self.done.wait(timeout):
            raise TimeoutError(f"the response to {self.method} {self.path} did not end within {timeout} s")
        assert self.outcome is not None
        return self.outcome

    def _finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.done.set()


class Plan:
    """Scripted behaviour for the next ``times`` requests to ``path``.

    Created by :meth:`Emulator.plan`, never directly. ``options`` is the read-only
    mapping of the options given there. A plan is thread-safe:

    - ``requests``: the :class:`RecordedRequest` objects it applied to, in order.
    - ``remaining``: how many more requests it will still apply to.
    - ``advance(n)``: with ``step=True``, let ``n`` more pieces go out.
    - ``outcome``: how the most recent response under this plan ended
      (``"complete"``, ``"client-disconnected"``, ``"fault-disconnect"`` or
      ``"aborted"``), ``None`` before any ended.
    - ``done``: a ``threading.Event`` set once the plan is used up (``remaining``
      is 0) and every response under it has ended, however it ended.
    - ``wait(timeout)``: block on ``done`` and return ``outcome``.
    """

    def __init__(self, path: Optional[str], times: int, options: Mapping[str, Any]) -> None:
        self.path = path
        self.times = times
        self.options: Mapping[str, Any] = MappingProxyType(dict(options))
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._turns = threading.Semaphore(0)
        self._requests: List[RecordedRequest] = []
        self._remaining = times
        self._active = 0
        self._outcome: Optional[str] = None

    @property
    def requests(self) -> List[RecordedRequest]:
        """The requests this plan applied to so far (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def remaining(self) -> int:
        """How many more requests this plan will apply to."""
        with self._lock:
            return self._remaining

    @property
    def outcome(self) -> Optional[str]:
        """How the most recent response under this plan ended, or ``None``."""
        with self._lock:
            return self._outcome

    def advance(self, n: int = 1) -> None:
        """With ``step=True``: allow ``n`` more pieces to be sent (calls may run ahead)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if n:
            self._turns.release(n)

    def wait(self, timeout: float = 5.0) -> str:
        """Block until ``done`` is set; return ``outcome``.

        Raises ``TimeoutError`` if the plan is not done within ``timeout`` seconds.
        """
        if not self.done.wait(timeout):
            raise TimeoutError(f"{self!r} was not done within {timeout} s")
        outcome = self.outcome
        assert outcome is not None
        return outcome

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.options.items())
        return f"Plan(path={self.path!r}, times={self.times}, remaining={self.remaining}, {options})"

    # -- used by the emulator -------------------------------------------------

    def _claim(self, request: RecordedRequest) -> bool:
        with self._lock:
            if self._remaining <= 0:
                return False
            self._remaining -= 1
            self._active += 1
            self._requests.append(request)
            return True

    def _next_turn(self, timeout: float) -> bool:
        return self._turns.acquire(timeout=timeout)

    def _finish(self, outcome: str) -> None:
        with self._lock:
            self._outcome = outcome
            self._active -= 1
            finished = self._remaining == 0 and self._active == 0
        if finished:
            self.done.set()


def check_options(options: Mapping[str, Any]) -> None:
    """Raise ``ValueError``/``TypeError`` for option values :meth:`Emulator.plan` can't honour."""

    def fail(message: str) -> None:
        raise ValueError(f"plan(): {message}")

    if "framing" in options and options["framing"] not in FRAMINGS:
        fail(f"framing must be one of {FRAMINGS}, not {options['framing']!r}")
    for name in ("pace", "delay_headers"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            fail(f"{name} must be a number >= 0, not {value!r}")
    for name in ("long_reply", "disconnect_after_bytes", "disconnect_after_events"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            fail(f"{name} must be an int >= 0, not {value!r}")
    for name in ("status", "html_error"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599):
            fail(f"{name} must be an HTTP status code (100-599), not {value!r}")
    pieces = options.get("pieces")
    if pieces is not None and (isinstance(pieces, (str, bytes)) or not all(isinstance(p, str) for p in pieces)):
        raise TypeError("plan(): pieces must be a list of str")
    if len({"reply", "pieces", "long_reply"} & options.keys()) > 1:
        fail("give at most one of reply, pieces and long_reply")
    scripted = {"body", "retry_after"} if "context_overflow" in options else {"status", "body", "retry_after"}
    answers = [
        name
        for name, keys in (
            ("status/body/retry_after", scripted),
            ("html_error", {"html_error"}),
            ("cloudflare", {"cloudflare"}),
            ("context_overflow", {"context_overflow"}),
        )
        if keys & options.keys()
    ]
    if len(answers) > 1:
        fail(f"{' and '.join(answers)} each replace the whole answer; give only one")
    if "content_type" in options and not {"status", "body", "retry_after"} & options.keys():
        fail("content_type only applies to a scripted answer (status= or body=)")
