"""The emulator's deterministic replies: ``reply_for``, ``question_from_prompt``, ``pieces_for``,
and the public surface of ``llmproviders.testing``.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List

import pytest

import llmproviders.testing as testing
from llmproviders.testing import (
    GPROCHAT_SECRET,
    REPLY_FORMAT,
    TOOL_REPLY_FORMAT,
    content_text,
    pieces_for,
    question_for,
    question_from_prompt,
    reply_for,
)

from .clients import MESSAGES, format_prompt


def test_public_surface() -> None:
    names = ["Emulator", "Plan", "RecordedRequest", "reply_for", "pieces_for", "GPROCHAT_SECRET", "serve", "Flaky", "DIALECTS"]
    for name in names:
        assert name in testing.__all__
    assert all(hasattr(testing, name) for name in testing.__all__)
    public = {name for name in vars(testing) if not name.startswith("_")} - {"pytest_plugin"}
    assert public == set(testing.__all__)
    assert GPROCHAT_SECRET == "2BC120D4-BB36-1B60-26DE-DB630472A3D8"


def test_reply_format() -> None:
    assert reply_for("hi") == "Вы спросили: «hi». Here is the answer ✓ 🚀"
    assert reply_for(MESSAGES) == "Вы спросили: «Что такое «эмулятор»? 🚀». Here is the answer ✓ 🚀"
    assert reply_for([{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}]) == reply_for("A")
    assert reply_for([{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]) == reply_for("U")
    assert question_from_prompt(format_prompt(MESSAGES)) == MESSAGES[-1]["content"]
    assert question_from_prompt("User: multi\nline\nAssistant:") == "multi\nline"
    assert question_from_prompt("no prompt here") == "no prompt here"
    with pytest.raises(ValueError):
        reply_for([])


def test_pieces_for_examples() -> None:
    assert pieces_for("Вы спросили: «x»") == ["Вы ", "спросили: ", "«x»"]
    assert pieces_for("hello") == ["he", "ll", "o"]
    assert pieces_for("") == []
    assert pieces_for("abcdefg", 3) == ["abc", "de", "fg"]
    assert len(pieces_for(reply_for("hi"))) >= 3


_ALPHABET = "ab Z:\n\t\r\u00a0«»✓🚀Вы日本e\u0301"


def random_text(rng: random.Random, alphabet: str = _ALPHABET, longest: int = 40) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


def test_pieces_for_concatenate() -> None:
    rng = random.Random(1)
    for _ in range(500):
        text = random_text(rng)
        for n in (None, rng.randint(1, 40)):
            pieces = pieces_for(text, n)
            assert "".join(pieces) == text
            assert all(pieces)
            if n is not None:
                assert len(pieces) == min(n, len(text))
            elif len(text) >= 3:
                assert len(pieces) >= 3


def test_reply_for_prompt_matches_messages() -> None:
    rng = random.Random(2)
    roles = ["system", "user", "assistant"]
    for _ in range(500):  # without ":" no content can fake a "User: " line
        messages = [
            {"role": rng.choice(roles), "content": random_text(rng, _ALPHABET.replace(":", ""), 20)}
            for _ in range(rng.randint(1, 5))
        ]
        assert reply_for(format_prompt(messages)) == reply_for(messages), messages


def test_the_question_of_content_parts_is_their_joined_text() -> None:
    parts = [
        {"type": "text", "text": "Что на картинке?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "Кратко."},
    ]
    messages = [{"role": "system", "content": [{"type": "text", "text": "S"}]}, {"role": "user", "content": parts}]
    assert content_text(parts) == "Что на картинке?\nКратко."
    assert question_for(messages) == "Что на картинке?\nКратко."
    assert reply_for(messages) == REPLY_FORMAT.format(q="Что на картинке?\nКратко.")
    assert content_text(None) == "" and content_text([{"type": "image_url", "image_url": {}}]) == ""
    with pytest.raises(TypeError):
        content_text(42)


def test_a_conversation_that_ends_with_tool_results_gets_them_quoted() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages: List[Dict[str, Any]] = [
        {"role": "user", "content": "Погода?"},
        {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "c2"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "21 °C"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "ясно"}]},
    ]
    assert reply_for(messages) == TOOL_REPLY_FORMAT.format(result="21 °C; ясно")
    assert reply_for(messages) == "Инструмент ответил: «21 °C; ясно». Here is the answer ✓ 🚀"
    assert reply_for(messages[:2]) == reply_for("Погода?")  # text-only reasoning is unchanged
