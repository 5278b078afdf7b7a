"""Time limits and interruption: timeouts, the deadline clock, ``abort()``, and the watchdog.

A :class:`Stopper` is what can end one call early: its ``deadline=`` (seconds for the
whole call, retries included; the clock starts at the first request) and
:meth:`Stopper.abort` from another thread. Both work the same way: the connection the
call is using (attached by the connection itself as the request goes out, detached when
the pool takes it back) has its socket shut down, which wakes any read blocked on it,
and the read that then fails is reported as the deadline or the abort. Shutting down
happens under one lock with the detaching, so a connection already back in the pool,
maybe serving another call, is never touched.

For the deadline, one process-wide watchdog thread does the shutting down: started when
a call with a deadline sends a request, it sleeps until the earliest deadline it
watches and exits when it has nothing left to watch. It is what holds a deadline
against a server that drips the status line or headers byte by byte, or a compressed
body whose bytes decode to nothing (each socket read there would get a fresh timeout).
After ``os.fork()`` the child starts with no watchdog and fresh locks.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from typing import Any, Dict, Optional, Tuple, Union

from .._exceptions import InvalidArgumentError

__all__ = [
    "TimeoutArg",
    "DEFAULT_TIMEOUT",
    "resolve_timeout",
    "check_deadline",
    "Stopper",
    "detach",
    "watch",
    "unwatch",
    "shutdown_socket",
]

#: ``timeout=`` accepts seconds for both phases, or ``(connect, read)``.
TimeoutArg = Union[None, float, Tuple[float, float]]
#: Connect within 10 s; then at most 120 s of silence between two reads.
DEFAULT_TIMEOUT: Tuple[float, float] = (10.0, 120.0)
_LONGEST = 1e9  # seconds; anything longer is a mistake (or inf)


def resolve_timeout(timeout: TimeoutArg, default: Tuple[float, float]) -> Tuple[float, float]:
    """``None`` -> ``default``; a number -> both phases; a pair -> ``(connect, read)``."""
    if timeout is None:
        return default
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        pair: Tuple[Any, Any] = (timeout, timeout)
    elif isinstance(timeout, tuple) and len(timeout) == 2:
        pair = timeout
    else:
        raise InvalidArgumentError(f"timeout must be seconds or a (connect, read) pair of seconds, not {timeout!r}")
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < _LONGEST:
            raise InvalidArgumentError(f"timeout values must be positive numbers, not {timeout!r}")
    return (float(pair[0]), float(pair[1]))


def check_deadline(deadline: Any) -> Optional[float]:
    """``deadline=`` as float seconds (None: no deadline). A bool, a non-number, NaN,
    infinity, zero or a negative number is an :class:`InvalidArgumentError`."""
    if deadline is None:
        return None
    if (
        isinstance(deadline, bool)
        or not isinstance(deadline, (int, float))
        or not 0 < deadline < _LONGEST  # (before isfinite: a huge int overflows a float)
        or not math.isfinite(deadline)
    ):
        raise InvalidArgumentError(
            f"deadline must be a positive, finite number of seconds (or None for no deadline), not {deadline!r}"
        )
    return float(deadline)


def shutdown_socket(sock: Any) -> None:
    """Shut ``sock`` down both ways (wakes a blocked read); quiet if it is gone."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass  # already closed or never connected


# Guards Stopper._conn and every connection's _llm_stopper (attach, detach, interrupt).
_lock = threading.Lock()


class Stopper:
    """The deadline clock and abort flag of one call, and the connection it is using.

    ``deadline`` is None or seconds; the clock starts at the first :meth:`remaining`
    (the first request). :meth:`abort` and the watchdog (:meth:`expire`) shut the attached
    connection's socket down; readers then ask :attr:`aborted` and :attr:`expired`
    to say why their read failed.
    """

    __slots__ = ("deadline", "_deadline_at", "_aborted", "expired", "_conn", "_sock")

    def __init__(self, deadline: Optional[float] = None) -> None:
        self.deadline = deadline
        self._deadline_at: Optional[float] = None
        self._aborted = threading.Event()
        #: The watchdog found the deadline passed (and shut the connection down).
        self.expired = False
        self._conn: Any = None  # the connection of the request in flight, if any
        self._sock: Any = None  # its socket, as the response started (http.client may drop conn.sock)

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    @property
    def deadline_at(self) -> Optional[float]:
        """The ``time.monotonic()`` of the deadline, once the clock runs."""
        return self._deadline_at

    def remaining(self) -> Optional[float]:
        """Seconds left before the deadline (None without one); starts the clock."""
        if self.deadline is None:
            return None
        if self._deadline_at is None:
            self._deadline_at = time.monotonic() + self.deadline
        return self._deadline_at - time.monotonic()

    def past_deadline(self) -> bool:
        """Whether the deadline has passed (or the watchdog said so)."""
        if self.expired:
            return True
        left = self.remaining()
        return left is not None and left <= 0.001

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` (a retry's backoff); False if the call was aborted meanwhile."""
        return not self._aborted.wait(seconds)

    def abort(self) -> None:
        """Set the abort flag and wake the read of the request in flight, if any."""
        self._aborted.set()
        self._interrupt()

    def expire(self) -> None:
        """The watchdog's verdict: the deadline passed. Wakes the request in flight."""
        self.expired = True
        self._interrupt()

    def attach(self, conn: Any, sock: Any = None) -> None:
        """``conn`` now carries this call's request (called by the connection as it
        sends, and again as it waits for the response, when its socket surely exists).
        If the call was already stopped, the socket is shut down at once.

        ``sock`` is the socket the response will be read from: for a response that ends
        the connection, http.client detaches it from ``conn`` (``conn.sock`` is None).
        """
        with _lock:
            previous = self._conn
            if previous is not None and previous is not conn:
                previous._llm_stopper = None
            self._conn = conn
            self._sock = sock
            conn._llm_stopper = self
            if self._aborted.is_set() or self.expired:
                self._shutdown()

    def _interrupt(self) -> None:
        with _lock:
            if self._conn is not None:
                self._shutdown()

    def _shutdown(self) -> None:  # with _lock held
        sock = getattr(self._conn, "sock", None)
        shutdown_socket(sock)
        if self._sock is not None and self._sock is not sock:
            shutdown_socket(self._sock)


def detach(conn: Any) -> None:
    """The pool takes ``conn`` back: no stopper may shut it down any more."""
    stopper = getattr(conn, "_llm_stopper", None)
    if stopper is None:
        return
    with _lock:
        if stopper._conn is conn:
            stopper._conn = None
            stopper._sock = None
        conn._llm_stopper = None


# -- the watchdog ------------------------------------------------------------------

_watch = threading.Condition(threading.Lock())
_watched: Dict[Stopper, float] = {}
_watchdog: Optional[threading.Thread] = None


def watch(stopper: Stopper) -> None:
    """Have the watchdog expire ``stopper`` at its deadline (starts the clock)."""
    global _watchdog
    if stopper.deadline is None:
        return
    stopper.remaining()
    at = stopper.deadline_at
    assert at is not None
    with _watch:
        _watched[stopper] = at
        if _watchdog is None:
            _watchdog = threading.Thread(target=_run, name="llmproviders-deadline-watchdog", daemon=True)
            _watchdog.start()
        else:
            _watch.notify()


def unwatch(stopper: Stopper) -> None:
    """Stop watching ``stopper`` (its request is over)."""
    with _watch:
        if _watched.pop(stopper, None) is not None and not _watched:
            _watch.notify()  # nothing left: let the watchdog exit now


def _run() -> None:
    global _watchdog
    with _watch:
        while True:
            if not _watched:
                _watchdog = None
                return
            now = time.monotonic()
            due = [stopper for stopper, at in _watched.items() if at <= now]
            for stopper in due:
                del _watched[stopper]
                stopper.expire()
            if not due:
                _watch.wait(min(_watched.values()) - now)


def _after_fork_in_child() -> None:
    """A forked child has only the forking thread: no watchdog, and locks that another
    thread of the parent may have held at the fork. Start afresh."""
    global _lock, _watch, _watched, _watchdog
    _lock = threading.Lock()
    _watch = threading.Condition(threading.Lock())
    _watched = {}
    _watchdog = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
