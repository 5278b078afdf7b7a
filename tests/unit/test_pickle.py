"""Every error of the library survives pickle: a process pool or a cluster sends errors
back pickled, and the caller must get the same type, message and fields."""

import concurrent.futures
import copy
import inspect
import multiprocessing
import pickle
from typing import Any, Dict, List

import pytest
from requests.structures import CaseInsensitiveDict

import llmproviders
from llmproviders import (
    LLMProvidersError,
    RateLimitError,
    ResponseStatusError,
    RetryProviderError,
    StreamError,
    TransportError,
)

#: A value for each field an error's constructor takes, by name. A new keyword-only
#: field gets a string (see `_sample`), so new classes are covered without edits here.
SAMPLES: Dict[str, Any] = {
    "provider": "FlowGpt",
    "partial": "Hello, wor",
    "status_code": 503,
    "body": "upstream is overloaded",
    "headers": CaseInsensitiveDict({"Retry-After": "7", "Content-Type": "application/json"}),
    "retry_after": 7.0,
    "url": "http://emulator.test:8080/v1/chat/completions",
    "frame": '{"choices": [{"delta": {"content": ',
    "reply": "Hello, world!",
    "error": {"message": "model overloaded", "type": "server_error", "code": 503},
    "model": "gpt-9",
    "models": ["gpt-3.5-turbo", "gpt-4"],
    "known": ["FlowGpt", "GPROChat"],
}


def public_error_classes() -> List[type]:
    classes = [getattr(llmproviders, name) for name in llmproviders.__all__]
    return [cls for cls in classes if isinstance(cls, type) and issubclass(cls, BaseException)]


def keyword_fields(cls: type) -> Dict[str, inspect.Parameter]:
    """The keyword arguments ``cls(...)`` takes, following ``**kwargs`` up the MRO."""
    fields: Dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        if klass is BaseException or klass is Exception:
            break
        parameters = inspect.signature(init).parameters
        for name, parameter in parameters.items():
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
                fields.setdefault(name, parameter)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return fields


def _sample(name: str, cls: type) -> Any:
    if name == "errors":
        return {
            "FlowGpt": ResponseStatusError("FlowGpt: HTTP 500", provider="FlowGpt", status_code=500, body="x"),
            "Ylokh": TransportError("Ylokh: refused", provider="Ylokh", url="http://h:1/v1"),
        }
    return copy.deepcopy(SAMPLES.get(name, f"<{cls.__name__}.{name}>"))


def full_instance(cls: type) -> LLMProvidersError:
    """An instance of ``cls`` with every field set, earlier attempts and a note."""
    kwargs = {name: _sample(name, cls) for name in keyword_fields(cls)}
    error = cls(f"{cls.__name__}: something went wrong", **kwargs)
    error.attempts = [
        RateLimitError("FlowGpt: HTTP 429", provider="FlowGpt", status_code=429, retry_after=2.0),
        StreamError("FlowGpt: broke", provider="FlowGpt", partial="Hel"),
    ]
    if hasattr(error, "add_note"):  # Python 3.11+
        error.add_note("seen in a worker")
    else:  # what add_note does, on 3.9 and 3.10 (where tracebacks do not show notes)
        error.__notes__ = ["seen in a worker"]
    return error


def same_fields(a: Any, b: Any) -> None:
    """Assert ``a`` and ``b`` are equal, comparing errors by type, message and fields."""
    if isinstance(a, BaseException):
        assert type(b) is type(a)
        assert str(b) == str(a) and b.args == a.args
        assert set(vars(b)) == set(vars(a)), (type(a).__name__, set(vars(a)) ^ set(vars(b)))
        for name in vars(a):
            same_fields(getattr(a, name), getattr(b, name))
    elif isinstance(a, (list, tuple)):
        assert type(b) is type(a) and len(a) == len(b)
        for x, y in zip(a, b):
            same_fields(x, y)
    elif isinstance(a, dict) or isinstance(a, CaseInsensitiveDict):
        assert type(b) is type(a) and list(a) == list(b)
        for key in a:
            same_fields(a[key], b[key])
    else:
        assert type(b) is type(a) and b == a


def roundtrip(error: BaseException) -> Any:
    return pickle.loads(pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL))


def test_the_public_error_classes_are_found():
    names = {cls.__name__ for cls in public_error_classes()}
    assert {"LLMProvidersError", "ResponseStatusError", "RateLimitError", "RetryProviderError", "StreamError"} <= names
    assert len(names) >= 19


@pytest.mark.parametrize("cls", public_error_classes(), ids=lambda cls: cls.__name__)
def test_every_public_error_survives_pickle_with_every_field(cls):
    error = full_instance(cls)
    for name in keyword_fields(cls):
        assert getattr(error, name) is not None, name  # the instance really has the field set
    for protocol in range(pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL + 1):
        again = pickle.loads(pickle.dumps(error, protocol=protocol))
        same_fields(error, again)
        assert again.__notes__ == ["seen in a worker"]
        assert isinstance(again, LLMProvidersError)
    assert str(roundtrip(error)) == str(error)
    same_fields(error, copy.copy(error))
    same_fields(error, copy.deepcopy(error))


@pytest.mark.parametrize("cls", public_error_classes(), ids=lambda cls: cls.__name__)
def test_every_public_error_survives_pickle_when_chained(cls):
    cause = full_instance(RateLimitError)
    try:
        try:
            raise ConnectionResetError("the peer reset the connection")
        except ConnectionResetError as foreign:
            raise cause from foreign
    except RateLimitError:
        pass
    error = full_instance(cls)
    error.__cause__ = cause
    again = roundtrip(error)
    same_fields(error, again)
    same_fields(cause, again.__cause__)  # our own cause comes along
    assert again.__suppress_context__
    assert again.__cause__.__cause__ is None  # a foreign cause (it may hold a socket) is dropped


def test_status_errors_keep_case_insensitive_headers_and_retry_after():
    error = full_instance(RateLimitError)
    again = roundtrip(error)
    assert again.status_code == 503 and again.retry_after == 7.0
    assert again.headers["retry-after"] == "7" and again.headers["RETRY-AFTER"] == "7"
    assert again.body == "upstream is overloaded" and again.url == SAMPLES["url"]


def test_retry_provider_error_keeps_every_providers_error():
    error = full_instance(RetryProviderError)
    again = roundtrip(error)
    assert list(again.errors) == ["FlowGpt", "Ylokh"]
    assert isinstance(again.errors["FlowGpt"], ResponseStatusError) and again.errors["FlowGpt"].status_code == 500
    assert again.errors["Ylokh"].url == "http://h:1/v1"


class RedirectLikeError(ResponseStatusError):
    """A subclass as another branch might add one: a required keyword-only field."""

    def __init__(self, message: str, *, location: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.location = location


def test_subclasses_with_keyword_only_fields_pickle_without_their_own_code():
    error = RedirectLikeError("FlowGpt: redirected to another host", provider="FlowGpt", status_code=307, location="http://evil.test/")
    again = roundtrip(error)
    same_fields(error, again)
    assert again.location == "http://evil.test/" and again.status_code == 307


def test_a_lazily_computed_partial_is_pickled_as_its_value(monkeypatch):
    """StreamError.partial is read from the stream's record (which may be a temporary
    file, which pickle cannot carry) when first asked for; pickling takes the value."""
    from llmproviders import _reply

    monkeypatch.setattr(_reply, "SPILL_AFTER", 4)
    record = _reply.TextRecord()
    record.parts += ["Hel", "lo, ", "world"]
    record.join_parts()
    assert record.spill is not None
    error = StreamError("Stream broke", provider="FlowGpt")
    error._partial_source = record  # as a Stream attaches it
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(record)  # what computes it cannot be pickled ...
    again = roundtrip(error)  # ... and is not: the value is
    assert type(again) is StreamError and again.partial == "Hello, world" and str(again) == "Stream broke"
    record.release()


def _fail_in_worker(status: int) -> None:
    raise RateLimitError(
        "FlowGpt: rate limited", provider="FlowGpt", status_code=status, retry_after=3.0, headers=CaseInsensitiveDict({"Retry-After": "3"})
    )


@pytest.mark.timeout(60)
def test_an_error_raised_in_a_process_pool_reaches_the_caller_whole():
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(_fail_in_worker, 429)
        with pytest.raises(RateLimitError) as info:
            future.result(timeout=50)
    assert info.value.status_code == 429 and info.value.retry_after == 3.0
    assert info.value.headers["retry-after"] == "3" and info.value.provider == "FlowGpt"
