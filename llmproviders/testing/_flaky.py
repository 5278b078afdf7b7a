"""A flaky emulator for batch tests: deterministic failures before the first delta.

A batch test wants some requests to fail (a 500, a 429 with ``Retry-After``, a
dropped connection) and some items to fail for good, and it wants to know exactly
how many requests each item will cost, however the workers interleave. So nothing
here draws from a shared random sequence: whether a request fails depends only on
its question (the text the reply would quote, see
:func:`~llmproviders.testing.question_for`) and on how many requests with that
question came before it, through a seeded hash.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Optional, Tuple

FAULTS = ("500", "429", "drop")
"""The default fault kinds. A kind is an HTTP error status as a string (``"400"`` to
``"599"``; ``"429"`` comes with ``Retry-After``) or ``"drop"``: the connection is
closed after the request is read, with no answer at all."""


def _fraction(*parts: object) -> float:
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Flaky:
    """Which chat requests fail, and how; give it to ``Emulator(flaky=...)``.

    - A question that contains ``marker`` (``"FAIL"`` by default; ``None`` for
      none) fails on every attempt, with the fault ``permanent``.
    - Of the other questions, a fraction ``rate`` is flaky: such a question fails
      its first ``k`` attempts, ``1 <= k <= max_failures``, then succeeds. The
      others never fail.
    - Each failing attempt gets one of ``kinds`` (see :data:`FAULTS`); a 429 carries
      ``Retry-After: retry_after`` (seconds).

    Which questions are flaky, their ``k`` and their faults follow from
    ``seed`` and the question alone, so :meth:`failures` and :meth:`fault` predict
    exactly what the emulator will do, in any order and under any concurrency.
    It applies to the four chat endpoints, to requests that are valid (a 400 for a
    bad request comes first) and not answered by a plan's scripted answer.

    Example usage::

        flaky = Flaky(rate=0.3, kinds=("500", "429", "drop"), retry_after=0.05, seed=1)
        with Emulator(flaky=flaky) as emulator:
            ...  # run the batch against emulator.base_url
            for question in questions:
                failures = flaky.failures(question)  # None: fails for good
                assert len(emulator.requests_for(question)) == expected(failures)
    """

    rate: float = 0.3
    kinds: Tuple[str, ...] = FAULTS
    retry_after: float = 0.05
    seed: int = 0
    max_failures: int = 2
    marker: Optional[str] = "FAIL"
    permanent: str = "500"

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not 0 <= self.rate <= 1:
            raise ValueError(f"Flaky(rate=...) must be a fraction from 0 to 1, not {self.rate!r}")
        if isinstance(self.kinds, str) or not self.kinds:
            raise ValueError(f"Flaky(kinds=...) must be a non-empty tuple of fault kinds, not {self.kinds!r}")
        object.__setattr__(self, "kinds", tuple(self.kinds))
        for kind in self.kinds + (self.permanent,):
            if not _valid_kind(kind):
                raise ValueError(f"unknown fault kind {kind!r}: use 'drop' or an HTTP error status such as '500' or '429'")
        if isinstance(self.retry_after, bool) or not isinstance(self.retry_after, (int, float)):
            raise ValueError(f"Flaky(retry_after=...) must be a number of seconds, not {self.retry_after!r}")
        if not 0 <= self.retry_after < math.inf:
            raise ValueError(f"Flaky(retry_after=...) must be finite and >= 0, not {self.retry_after!r}")
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) or self.max_failures < 1:
            raise ValueError(f"Flaky(max_failures=...) must be an int >= 1, not {self.max_failures!r}")
        if self.marker is not None and (not isinstance(self.marker, str) or not self.marker):
            raise ValueError(f"Flaky(marker=...) must be a non-empty str or None, not {self.marker!r}")

    def failures(self, question: str) -> Optional[int]:
        """How many first attempts at ``question`` fail: 0 for a healthy question,
        ``k`` for a flaky one, ``None`` for one that always fails (the marker)."""
        if self.marker is not None and self.marker in question:
            return None
        if _fraction(self.seed, "flaky", question) >= self.rate:
            return 0
        return 1 + int(_fraction(self.seed, "failures", question) * self.max_failures)

    def fault(self, question: str, attempt: int) -> Optional[str]:
        """The fault of the request with ``question`` that comes after ``attempt``
        earlier ones (0 for the first), or ``None`` if it is answered normally."""
        failures = self.failures(question)
        if failures is None:
            return self.permanent
        if attempt >= failures:
            return None
        return self.kinds[int(_fraction(self.seed, "kind", question, attempt) * len(self.kinds))]


def _valid_kind(kind: object) -> bool:
    return kind == "drop" or (isinstance(kind, str) and kind.isdigit() and 400 <= int(kind) <= 599)
