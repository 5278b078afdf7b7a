"""The events are small immutable values (written out by hand, not dataclasses, for the
import's sake): fields by position or keyword, value equality, hashing, repr, pickling,
copying, ``match`` by position, ``to_dict()``, and no assignment."""

import copy
import pickle
import sys
import textwrap
import weakref

import pytest

from llmproviders import Finish, ReasoningDelta, RefusalDelta, TextDelta, ToolCall, ToolCallDelta, Usage
from llmproviders.events import FrozenEventError

SAMPLES = [
    (TextDelta, ("Привет",), {"text": "Привет"}),
    (ReasoningDelta, ("hmm",), {"text": "hmm"}),
    (RefusalDelta, ("no",), {"text": "no"}),
    (ToolCallDelta, (0, "call_1", "lookup", '{"q":'), {"index": 0, "id": "call_1", "name": "lookup", "arguments": '{"q":'}),
    (ToolCall, (1, None, "lookup", "{}"), {"index": 1, "id": None, "name": "lookup", "arguments": "{}"}),
    (Usage, (3, 4, 7), {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
    (Finish, ("stop",), {"reason": "stop"}),
]


@pytest.mark.parametrize("cls, args, kwargs", SAMPLES, ids=[s[0].__name__ for s in SAMPLES])
def test_an_event_is_an_immutable_value(cls, args, kwargs):
    event = cls(*args)
    assert event == cls(**kwargs) and not (event != cls(**kwargs))
    assert hash(event) == hash(cls(**kwargs)) and len({event, cls(**kwargs)}) == 1
    for name, value in kwargs.items():
        assert getattr(event, name) == value
    assert event != TextDelta("something else") and event != "text" and event != args
    assert repr(event).startswith(f"{cls.__name__}(") and all(f"{k}={v!r}" in repr(event) for k, v in kwargs.items())
    for copied in (pickle.loads(pickle.dumps(event, protocol)) for protocol in range(pickle.HIGHEST_PROTOCOL + 1)):
        assert copied == event and type(copied) is cls
    assert copy.copy(event) == event and copy.deepcopy(event) == event
    with pytest.raises(FrozenEventError):
        setattr(event, next(iter(kwargs)), "changed")
    with pytest.raises(AttributeError):  # FrozenEventError is an AttributeError, as dataclasses' is
        event.new_field = 1
    with pytest.raises(AttributeError):
        del event.__dict__  # no instance dict at all: slots
    assert cls.__match_args__ == tuple(kwargs) + (("raw",) if cls is Usage else ())  # as the dataclasses had
    assert weakref.ref(event)() is event
    restored = cls.__new__(cls)  # a pickle of the earlier dataclass: __new__, then its state dict
    restored.__setstate__(dict(kwargs, **({"raw": {}} if cls is Usage else {})))
    assert restored == event


def test_events_of_different_kinds_with_the_same_fields_differ():
    assert TextDelta("a") != ReasoningDelta("a") and hash(TextDelta("a")) != hash(ReasoningDelta("a"))


def test_usage_keeps_the_raw_object_but_does_not_compare_it():
    a = Usage(1, 2, 3, {"prompt_tokens": 1, "timings": {"x": 1}})
    b = Usage(1, 2, 3)
    assert a == b and hash(a) == hash(b) and b.raw == {}
    assert a.to_dict() == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "raw": a.raw}
    assert pickle.loads(pickle.dumps(a)).raw == a.raw
    assert Usage.from_dict({"prompt_tokens": 2, "completion_tokens": 5}) == Usage(2, 5, 7)
    assert Usage.from_dict("not an object") is None


def test_to_dict_gives_the_fields_and_a_tool_call_openais_shape():
    assert TextDelta("x").to_dict() == {"text": "x"}
    assert Finish(None).to_dict() == {"reason": None}
    assert ToolCall(0, "c", "f", '{"a": 1}').to_dict() == {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}


def test_events_work_in_match_statements():
    if sys.version_info < (3, 10):  # the syntax does not parse before 3.10; __match_args__ is checked above
        assert TextDelta.__match_args__ == ("text",)
        return
    namespace = {"TextDelta": TextDelta, "ToolCall": ToolCall, "Usage": Usage}
    exec(textwrap.dedent("""
        def kind(event):
            match event:
                case TextDelta(text):
                    return "text:" + text
                case ToolCall(_, _, name, arguments):
                    return "call:" + name + arguments
                case Usage(prompt, completion, total, raw):
                    return f"usage:{total}:{sorted(raw)}"
            return "other"
    """), namespace)
    kind = namespace["kind"]
    assert kind(TextDelta("hi")) == "text:hi"
    assert kind(ToolCall(0, "c", "f", "{}")) == "call:f{}"
    assert kind(Usage(1, 2, 3, {"raw": True})) == "usage:3:['raw']"
    assert kind(Finish("stop")) == "other"
