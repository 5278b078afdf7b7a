"""What a batch job returns: one :class:`ItemResult` per item, in a :class:`BatchResult`.

An item's error is kept as the typed exception; :meth:`ItemResult.to_dict` turns the
result into JSON (the form of ``BatchStore.export()`` and of the command line's
``--out``), and :func:`error_from_dict` rebuilds the exception from that JSON, which is
how the store keeps errors (never with pickle: a store file may come from elsewhere).

Example usage::

    result = llmproviders.batch(FlowGpt, ["Hi", "Hello"])
    print(result.done, result.failed, result.skipped)
    for item in result:
        print(item.index, item.text if item.ok else item.error)
    result.raise_for_errors()   # BatchError if any item failed
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union, overload

from . import _exceptions
from ._exceptions import LLMProvidersError, _fields, _rebuild
from .events import Usage

__all__ = ["ItemResult", "BatchResult", "BatchError", "BatchInterrupted", "error_to_dict", "error_from_dict"]

#: How many failed items a BatchError's message names (the others are counted).
SHOWN_FAILURES = 3


@dataclass(frozen=True)
class ItemResult:
    """The result of one item of a batch.

    ``index`` is the item's position in the inputs and ``id`` the id it was given (or
    None); ``key`` is what the store knows it by (the id, or a hash of the request).
    ``ok`` items have their ``text``; failed ones have ``error``, the typed exception
    (``text`` is None: a stream cut short keeps what arrived in ``error.partial``).
    ``attempts`` counts the requests the item cost (retries included) and ``seconds``
    the time from its first request to its end. ``from_store`` is True for an item that
    a store already had: not sent again in this run.
    """

    index: int
    id: Any
    key: str
    ok: bool
    text: Optional[str]
    error: Optional[BaseException]
    usage: Optional[Usage]
    finish_reason: Optional[str]
    attempts: int
    seconds: float
    from_store: bool = False

    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict: ``index``, ``id``, ``key``, ``ok``, ``text``, ``error``
        (None, or ``{"type": ..., "message": ..., ...}`` with the error's fields),
        ``usage`` (the token counts, or None), ``finish_reason``, ``attempts``,
        ``seconds``."""
        return {
            "index": self.index,
            "id": self.id,
            "key": self.key,
            "ok": self.ok,
            "text": self.text,
            "error": error_to_dict(self.error) if self.error is not None else None,
            "usage": usage_to_dict(self.usage),
            "finish_reason": self.finish_reason,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 6),
        }


class BatchResult(Sequence[ItemResult]):
    """The items of a batch, in input order, with counts: ``done`` (succeeded in this
    run), ``failed`` and ``skipped`` (finished in an earlier run, taken from the store);
    ``done + failed + skipped == len(result)``. ``seconds`` is how long the run took."""

    def __init__(self, items: Sequence[ItemResult], *, seconds: float = 0.0) -> None:
        self._items = list(items)
        self.seconds = seconds
        self.done = sum(1 for item in self._items if item.ok and not item.from_store)
        self.skipped = sum(1 for item in self._items if item.ok and item.from_store)
        self.failed = len(self._items) - self.done - self.skipped

    @overload
    def __getitem__(self, index: int) -> ItemResult: ...

    @overload
    def __getitem__(self, index: slice) -> List[ItemResult]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[ItemResult, List[ItemResult]]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[ItemResult]:
        return iter(self._items)

    @property
    def texts(self) -> List[Optional[str]]:
        """Each item's text, in input order (None for a failed item)."""
        return [item.text for item in self._items]

    @property
    def errors(self) -> List[ItemResult]:
        """The failed items, in input order."""
        return [item for item in self._items if not item.ok]

    def raise_for_errors(self) -> "BatchResult":
        """Raise :class:`BatchError` if any item failed; else return the result."""
        failed = self.errors
        if failed:
            raise BatchError(_failures_message(failed, len(self._items)), failed=failed)
        return self

    def __repr__(self) -> str:
        return f"<BatchResult {len(self)} items: {self.done} done, {self.failed} failed, {self.skipped} skipped>"


class BatchError(LLMProvidersError):
    """Items of a batch failed (:meth:`BatchResult.raise_for_errors`); ``failed`` holds
    their :class:`ItemResult`, each with its own typed ``error``."""

    def __init__(self, message: str, *, failed: Sequence[ItemResult] = ()) -> None:
        super().__init__(message)
        self.failed: List[ItemResult] = list(failed)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (``KeyboardInterrupt``) during a batch, once the batch has cleaned up:
    in-flight streams closed, every finished item in the store. ``result`` is a
    :class:`BatchResult` of the items that finished (each with its input ``index``),
    ``pending`` the number that did not.

    Catch it as ``KeyboardInterrupt``: it is not exported with the library's errors, which
    all derive from :class:`LLMProvidersError` (an ``Exception``), and an interrupt must
    not be caught by ``except Exception``."""

    def __init__(self, result: BatchResult, pending: int) -> None:
        finished = len(result)
        super().__init__(
            f"batch interrupted: {finished} of {finished + pending} items finished "
            f"({result.done} done, {result.failed} failed, {result.skipped} skipped), {pending} not finished"
        )
        self.result = result
        self.pending = pending


def _failures_message(failed: Sequence[ItemResult], total: int) -> str:
    shown = "; ".join(f"{_name(item)}: {_one_line(item.error)}" for item in failed[:SHOWN_FAILURES])
    more = f"; and {len(failed) - SHOWN_FAILURES} more" if len(failed) > SHOWN_FAILURES else ""
    return f"{len(failed)} of {total} batch items failed: {shown}{more}"


def _name(item: ItemResult) -> str:
    return f"item {item.index}" + (f" (id {item.id!r})" if item.id is not None else "")


def _one_line(error: Optional[BaseException]) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}" if error is not None else "unknown error"


def usage_to_dict(usage: Optional[Usage]) -> Optional[Dict[str, Any]]:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def usage_from_dict(data: Any) -> Optional[Usage]:
    return Usage.from_dict(data) if isinstance(data, dict) else None


def error_to_dict(error: BaseException) -> Dict[str, Any]:
    """JSON for an item's error: ``type`` (the class name; ``module.name`` outside this
    library), ``message``, and the error's public fields that are JSON values
    (``provider``, ``status_code``, ``retry_after``, ``partial``...), with ``attempts``
    (the earlier attempts' errors) in the same form. Response headers are left out
    (they may hold cookies)."""
    cls = type(error)
    if not isinstance(error, LLMProvidersError):
        return {"type": f"{cls.__module__}.{cls.__qualname__}", "message": str(error)}
    data: Dict[str, Any] = {"type": cls.__name__, "message": error.message}
    for name, value in _fields(error).items():
        if name.startswith("__") or name in data or name in _NOT_KEPT:
            continue
        if name == "errors" and isinstance(value, dict):  # RetryProviderError: each provider's error
            value = {str(key): error_to_dict(each) for key, each in value.items() if isinstance(each, BaseException)}
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue  # not a JSON value: left out
        data[name] = value
    data["attempts"] = [error_to_dict(earlier) for earlier in error.attempts]
    return data


_NOT_KEPT = ("attempts", "failed", "headers")


def error_from_dict(data: Dict[str, Any]) -> LLMProvidersError:
    """The error :func:`error_to_dict` described: the library's class with its fields,
    or, for an error of another kind, an :class:`LLMProvidersError` naming it."""
    kind = str(data.get("type", "LLMProvidersError"))
    message = str(data.get("message", ""))
    cls = getattr(_exceptions, kind, None) if "." not in kind else None
    if not (isinstance(cls, type) and issubclass(cls, LLMProvidersError)):
        return LLMProvidersError(f"{kind}: {message}")
    fields: Dict[str, Any] = {"provider": None, "message": message}
    if issubclass(cls, _exceptions.ResponseStatusError):
        fields["headers"] = {}
    if issubclass(cls, _exceptions.StreamError):
        fields["partial"] = ""
    fields.update((name, value) for name, value in data.items() if name not in ("type", "message", "attempts"))
    if isinstance(fields.get("errors"), dict):
        fields["errors"] = {key: error_from_dict(each) for key, each in fields["errors"].items() if isinstance(each, dict)}
    fields["attempts"] = [error_from_dict(each) for each in data.get("attempts") or () if isinstance(each, dict)]
    return _rebuild(cls, (message,), fields)
