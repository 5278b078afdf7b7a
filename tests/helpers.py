"""Test helpers: mock bodies that arrive in given pieces, and sample messages."""

from __future__ import annotations

import io
from typing import Iterable, List, Optional, Union

MESSAGES_RU = [{"role": "user", "content": "Привет, как дела?"}]
MESSAGES_SYSTEM = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Как дела?"},
]


class _Pieces(io.RawIOBase):
    """A raw stream returning one given piece per read, then optionally raising."""

    def __init__(self, pieces: Iterable[bytes], error: Optional[BaseException]) -> None:
        self._pieces = list(pieces)
        self._error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if not self._pieces:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return 0
        piece = self._pieces.pop(0)
        buffer[: len(piece)] = piece
        return len(piece)


def body(*pieces: Union[bytes, str], error: Optional[BaseException] = None) -> io.BufferedReader:
    """A mock response body that arrives in exactly these pieces (each one socket read),
    then raises ``error`` if given. ``responses`` turns a bytes body into one piece."""
    raw = [p.encode() if isinstance(p, str) else p for p in pieces]
    return io.BufferedReader(_Pieces(raw, error), buffer_size=max([1] + [len(p) for p in raw]))


def split_every(data: Union[bytes, str], size: int) -> List[bytes]:
    """``data`` cut into pieces of ``size`` bytes, blind to characters and frames."""
    raw = data.encode() if isinstance(data, str) else data
    return [raw[i : i + size] for i in range(0, len(raw), size)]
