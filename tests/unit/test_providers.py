"""Request contracts and reply parsing of the four providers, with ``responses``.

The signatures are recomputed from what was sent, not just checked for presence.
"""

import hashlib
import json
import re
import time

import pytest
import responses

from llmproviders import (
    ChatCompletion,
    Chatgpt4Online,
    FlowGpt,
    GPROChat,
    ProtocolError,
    ReplyMismatchError,
    ResponseError,
    ResponseStatusError,
    StreamInterruptedError,
    Ylokh,
)
from tests.helpers import MESSAGES_RU, MESSAGES_SYSTEM, body, split_every

FLOWGPT_URL = "https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous"
GPROCHAT_URL = "https://gprochat.com/api/generate"
NONCE_URL = "https://chatgpt4online.org/wp-json/mwai/v1/start_session"
SUBMIT_URL = "https://chatgpt4online.org/wp-json/mwai-ui/v1/chats/submit"
YLOKH_URL = "https://chatapi.ylokh.xyz/v1/chat/completions"

CONVERSATION = [
    {"role": "system", "content": "S1"},
    {"role": "user", "content": "U1"},
    {"role": "assistant", "content": "A1"},
    {"role": "system", "content": "S2"},
    {"role": "user", "content": "U2"},
]


def ndjson(*objects) -> bytes:
    return b"".join(json.dumps(o, ensure_ascii=False).encode() + b"\n" for o in objects)


def sse(*payloads) -> bytes:
    return b"".join(
        b"data: " + (p if isinstance(p, str) else json.dumps(p, ensure_ascii=False)).encode() + b"\n\n"
        for p in payloads
    )


def chunk(content=None, finish_reason=None, role=None):
    delta = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-3.5-turbo",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


# -- FlowGpt -----------------------------------------------------------------------


@responses.activate
def test_flowgpt_request_contract():
    responses.post(FLOWGPT_URL, body=ndjson({"event": "text", "data": "ok"}))
    before = int(time.time())
    assert FlowGpt.create("gemini", CONVERSATION, temperature=0.2) == "ok"
    request = responses.calls[0].request
    headers = request.headers
    timestamp = headers["x-timestamp"]
    assert before <= int(timestamp) <= int(time.time())  # whole seconds
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-nonce"])
    assert headers["Authorization"] == "Bearer null"
    expected = hashlib.md5(f"{timestamp}-{headers['x-nonce']}-Bearer null".encode()).hexdigest()
    assert headers["x-signature"] == expected
    assert re.fullmatch(r"f-[a-z0-9]{19}", headers["x-flow-device-id"])
    assert "Firefox/122.0" in headers["User-Agent"] and "Linux" in headers["User-Agent"]
    assert headers["Accept"] == "*/*"
    assert headers["Origin"] == "https://flowgpt.com"
    assert headers["Referer"] == "https://flowgpt.com/"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "model": "google-gemini",
        "nsfw": False,
        "question": "U2",
        "history": [
            {"role": "assistant", "content": "Hello, how can I help you today?"},
            {"role": "user", "content": "U1"},
            {"role": "assistant", "content": "A1"},
        ],
        "system": "S1\nS2",
        "temperature": 0.2,
        "promptId": "model-google-gemini",
        "documentIds": [],
        "chatFileDocumentIds": [],
        "generateImage": False,
        "generateAudio": False,
    }


@responses.activate
def test_flowgpt_defaults_and_fresh_signature_per_request():
    responses.post(FLOWGPT_URL, body=ndjson({"event": "text", "data": "ok"}))
    FlowGpt.create(None, MESSAGES_RU)
    FlowGpt.create(None, MESSAGES_RU)
    first, second = (json.loads(c.request.body) for c in responses.calls)
    assert first["system"] == "You are helpful assistant. Follow the user's instructions carefully."
    assert first["temperature"] == 0.7 and first["model"] == "gpt-3.5-turbo"
    assert first["history"] == [{"role": "assistant", "content": "Hello, how can I help you today?"}]
    assert first["question"] == "Привет, как дела?"
    nonces = {c.request.headers["x-nonce"] for c in responses.calls}
    assert len(nonces) == 2


@responses.activate
def test_flowgpt_parses_events_split_anywhere():
    reply = ndjson(
        {"event": "status", "data": "thinking"},
        {"data": "no event"},
        {"event": "text", "data": "При"},
        {"event": "text", "data": ""},
        {"event": "text", "data": "вет 👋"},
        {"event": "done"},
    ).replace(b"\n", b"\n\n", 1)
    for size in (1, 2, 3, 7, 64):
        responses.post(FLOWGPT_URL, body=body(*split_every(reply, size)))
        assert FlowGpt.create(None, MESSAGES_SYSTEM) == "Привет 👋"


@responses.activate
def test_flowgpt_malformed_line_is_a_protocol_error_with_partial():
    responses.post(FLOWGPT_URL, body=body(ndjson({"event": "text", "data": "Hi"}), b"Internal error\n"))
    stream = FlowGpt.create_completion(None, MESSAGES_RU)
    assert next(stream) == "Hi"
    with pytest.raises(ProtocolError) as info:
        next(stream)
    assert "FlowGpt" in str(info.value) and "Internal error" in str(info.value)
    assert info.value.partial == "Hi"
    responses.post(FLOWGPT_URL, body=ndjson({"event": "text", "data": 5}))
    with pytest.raises(ProtocolError, match="without string data"):
        FlowGpt.create(None, MESSAGES_RU)


# -- GPROChat ----------------------------------------------------------------------


@responses.activate
def test_gprochat_request_contract():
    responses.post(GPROCHAT_URL, body="ok")
    before = int(time.time() * 1000)
    assert GPROChat.create("anything", CONVERSATION) == "ok"
    request = responses.calls[0].request
    assert request.headers["Content-Type"] == "text/plain;charset=UTF-8"
    assert request.headers["Origin"] == "https://gprochat.com"
    assert request.headers["Referer"] == "https://gprochat.com/"
    assert request.headers["Accept"] == "*/*"
    assert "Chrome/129" in request.headers["User-Agent"] and "Linux" in request.headers["User-Agent"]
    sent = json.loads(request.body)
    prompt = "System: S1\nUser: U1\nAssistant: A1\nSystem: S2\nUser: U2\nAssistant:"
    assert sent["messages"] == [{"role": "user", "parts": [{"text": prompt}]}]
    assert sent["pass"] is None
    assert isinstance(sent["time"], int) and before <= sent["time"] <= int(time.time() * 1000)
    secret = "2BC120D4-BB36-1B60-26DE-DB630472A3D8"
    assert sent["sign"] == hashlib.sha256(f"{sent['time']}:{prompt}:{secret}".encode()).hexdigest()
    assert GPROChat.generate_signature(1, "x") == hashlib.sha256(f"1:x:{secret}".encode()).hexdigest()


@responses.activate
def test_gprochat_streams_text_with_characters_split_across_chunks():
    text = "Всё хорошо! 🚀 Ça va."
    responses.post(GPROCHAT_URL, body=body(*split_every(text, 1)))
    stream = GPROChat.create_completion(None, MESSAGES_RU)
    deltas = list(stream)
    assert "".join(deltas) == text
    assert all(deltas)  # a split character is held back, not yielded as ""
    assert len(deltas) == len(text)  # each character yielded as soon as it is whole


@responses.activate
def test_gprochat_invalid_utf8_is_a_protocol_error():
    responses.post(GPROCHAT_URL, body=body(b"ok ", b"\xff\xfe"))
    with pytest.raises(ProtocolError, match="not valid UTF-8") as info:
        GPROChat.create(None, MESSAGES_RU)
    assert info.value.partial == "ok "


# -- Chatgpt4Online ----------------------------------------------------------------


def end_event(reply):
    return {"type": "end", "data": json.dumps({"success": True, "reply": reply})}


@responses.activate
def test_chatgpt4online_nonce_handshake_and_submit_contract():
    responses.post(NONCE_URL, json={"success": True, "restNonce": "abc123"}, headers={"Set-Cookie": "wp_sid=1; Path=/"})
    responses.post(SUBMIT_URL, body=sse({"type": "live", "data": "ok"}, end_event("ok")))
    assert Chatgpt4Online.create("gpt-4", CONVERSATION) == "ok"
    nonce_request, submit = (c.request for c in responses.calls)
    assert nonce_request.method == "POST" and not nonce_request.body
    assert submit.headers["x-wp-nonce"] == "abc123"
    assert submit.headers["Accept"] == "text/event-stream"
    assert submit.headers["Content-Type"] == "application/json"
    assert submit.headers["Origin"] == "https://chatgpt4online.org"
    assert submit.headers["Referer"] == "https://chatgpt4online.org/"
    assert "Chrome/126" in submit.headers["User-Agent"]
    assert "wp_sid=1" in submit.headers.get("Cookie", "")
    assert json.loads(submit.body) == {
        "botId": "default",
        "newMessage": "System: S1\nUser: U1\nAssistant: A1\nSystem: S2\nUser: U2\nAssistant:",
        "stream": True,
    }


@responses.activate
def test_chatgpt4online_streams_live_pieces_split_across_chunks():
    reply = sse(
        {"type": "live", "data": "При"},
        {"type": "live", "data": "вет"},
        {"type": "live", "data": " 👋"},
        end_event("Привет 👋"),
    )
    for size in (1, 5, 13):
        responses.post(NONCE_URL, json={"restNonce": "n"})
        responses.post(SUBMIT_URL, body=body(*split_every(reply, size)))
        assert list(Chatgpt4Online.create_completion(None, MESSAGES_RU)) == ["При", "вет", " 👋"]


@responses.activate
def test_chatgpt4online_yields_each_live_piece_before_the_end():
    responses.post(NONCE_URL, json={"restNonce": "n"})
    pieces = sse({"type": "live", "data": "A"}), sse({"type": "live", "data": "B"}), sse(end_event("AB"))
    responses.post(SUBMIT_URL, body=body(*pieces))
    stream = Chatgpt4Online.create_completion(None, MESSAGES_RU)
    assert next(stream) == "A"  # not the whole reply at the end, as the original did
    assert next(stream) == "B"
    assert list(stream) == []


@responses.activate
def test_chatgpt4online_final_reply_that_extends_the_stream_yields_the_rest():
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=sse({"type": "live", "data": "Hel"}, end_event("Hello!")))
    assert list(Chatgpt4Online.create_completion(None, MESSAGES_RU)) == ["Hel", "lo!"]


@responses.activate
def test_chatgpt4online_final_reply_that_contradicts_the_stream_raises():
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=sse({"type": "live", "data": "Hello"}, end_event("Goodbye")))
    with pytest.raises(ReplyMismatchError) as info:
        list(Chatgpt4Online.create_completion(None, MESSAGES_RU))
    assert info.value.partial == "Hello" and info.value.reply == "Goodbye"
    assert isinstance(info.value, ProtocolError)


@responses.activate
def test_chatgpt4online_missing_end_event_is_an_interruption():
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=sse({"type": "live", "data": "Hel"}))
    with pytest.raises(StreamInterruptedError, match="without its 'end' event") as info:
        list(Chatgpt4Online.create_completion(None, MESSAGES_RU))
    assert info.value.partial == "Hel"


@responses.activate
def test_chatgpt4online_error_event_and_malformed_event():
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=sse({"type": "error", "data": "Quota exceeded"}))
    with pytest.raises(ResponseError, match="Quota exceeded"):
        Chatgpt4Online.create(None, MESSAGES_RU)
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=sse({"type": "live", "data": "a"}, "{not json"))
    with pytest.raises(ProtocolError, match="not JSON") as info:
        Chatgpt4Online.create(None, MESSAGES_RU)
    assert info.value.partial == "a"


@responses.activate
def test_chatgpt4online_nonce_step_failing_with_html_is_a_clear_error():
    page = "<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1></body></html>"
    responses.post(NONCE_URL, body=page, status=403, content_type="text/html")
    with pytest.raises(ResponseStatusError) as info:
        Chatgpt4Online.create(None, MESSAGES_RU)
    assert info.value.status_code == 403 and "403 Forbidden" in str(info.value)
    assert len(responses.calls) == 1  # no submit without a nonce
    responses.post(NONCE_URL, body=page, status=200, content_type="text/html")
    with pytest.raises(ProtocolError, match="HTML page"):
        Chatgpt4Online.create(None, MESSAGES_RU)
    responses.post(NONCE_URL, body="Forbidden", status=200, content_type="text/plain")
    with pytest.raises(ProtocolError, match="expected a JSON body"):
        Chatgpt4Online.create(None, MESSAGES_RU)
    responses.post(NONCE_URL, json={"success": False})
    with pytest.raises(ProtocolError, match="no restNonce"):
        Chatgpt4Online.create(None, MESSAGES_RU)


# -- Ylokh -------------------------------------------------------------------------


@responses.activate
def test_ylokh_request_contract_streaming():
    responses.post(YLOKH_URL, body=sse(chunk("ok", "stop"), "[DONE]"), content_type="text/event-stream")
    assert Ylokh.create("gpt-4", CONVERSATION, max_tokens=5, temperature=0.5) == "ok"
    request = responses.calls[0].request
    assert request.headers["Origin"] == "https://chat.ylokh.xyz"
    assert request.headers["Referer"] == "https://chat.ylokh.xyz/"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "messages": CONVERSATION,
        "model": "gpt-4",
        "temperature": 0.5,
        "presence_penalty": 0,
        "top_p": 1,
        "frequency_penalty": 0,
        "allow_fallback": True,
        "stream": True,
        "max_tokens": 5,
    }


@responses.activate
def test_ylokh_stream_skips_empty_deltas_and_stops_at_done():
    reply = sse(
        chunk("", role="assistant"),
        chunk("При"),
        chunk(None),
        chunk("вет 👋"),
        chunk(None, "stop"),
        "[DONE]",
        chunk("after done is never read"),
    )
    for size in (1, 3, 50):
        responses.post(YLOKH_URL, body=body(*split_every(reply, size)), content_type="text/event-stream")
        assert Ylokh.create(None, MESSAGES_RU) == "Привет 👋"


@responses.activate
def test_ylokh_whole_reply_mode():
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Целиком"}, "finish_reason": "stop"}],
    }
    responses.post(YLOKH_URL, json=completion)
    assert list(Ylokh.create_completion(None, MESSAGES_RU, stream=False)) == ["Целиком"]
    assert json.loads(responses.calls[0].request.body)["stream"] is False
    # a server that ignores stream=true and answers JSON is understood as well
    assert Ylokh.create(None, MESSAGES_RU) == "Целиком"


@responses.activate
def test_ylokh_error_inside_the_stream_is_a_typed_error():
    error = {"message": "The model is overloaded", "type": "server_error"}
    responses.post(YLOKH_URL, body=sse(chunk("Hi"), {"error": error}), content_type="text/event-stream")
    with pytest.raises(ResponseError, match="overloaded") as info:
        list(Ylokh.create_completion(None, MESSAGES_RU))
    assert info.value.error == error and info.value.partial == "Hi"
    responses.post(YLOKH_URL, json={"error": error})
    with pytest.raises(ResponseError, match="overloaded"):
        Ylokh.create(None, MESSAGES_RU, stream=False)


@responses.activate
def test_ylokh_malformed_chunks():
    responses.post(YLOKH_URL, body=sse({"choices": "nope"}), content_type="text/event-stream")
    with pytest.raises(ProtocolError, match="not a chat.completion.chunk"):
        Ylokh.create(None, MESSAGES_RU)
    responses.post(YLOKH_URL, body=sse("{oops"), content_type="text/event-stream")
    with pytest.raises(ProtocolError, match="not JSON"):
        Ylokh.create(None, MESSAGES_RU)
    responses.post(YLOKH_URL, json={"object": "chat.completion"})
    with pytest.raises(ProtocolError, match="not a chat.completion"):
        Ylokh.create(None, MESSAGES_RU, stream=False)


@responses.activate
def test_ylokh_truncated_stream_is_an_interruption_unless_finished():
    responses.post(YLOKH_URL, body=sse(chunk("Hel")), content_type="text/event-stream")
    with pytest.raises(StreamInterruptedError, match=r"\[DONE\]") as info:
        list(Ylokh.create_completion(None, MESSAGES_RU))
    assert info.value.partial == "Hel"
    responses.post(YLOKH_URL, body=sse(chunk("Hello"), chunk(None, "stop")), content_type="text/event-stream")
    assert Ylokh.create(None, MESSAGES_RU) == "Hello"  # finished, only [DONE] missing


# -- shared behaviour --------------------------------------------------------------


@responses.activate
def test_base_url_keeps_the_protocol_paths():
    responses.post("http://127.0.0.1:9/v3/chat-anonymous", body=ndjson({"event": "text", "data": "a"}))
    responses.post("http://127.0.0.1:9/api/generate", body="b")
    responses.post("http://127.0.0.1:9/wp-json/mwai/v1/start_session", json={"restNonce": "n"})
    responses.post("http://127.0.0.1:9/wp-json/mwai-ui/v1/chats/submit", body=sse(end_event("c")))
    responses.post("http://127.0.0.1:9/v1/chat/completions", body=sse(chunk("d", "stop"), "[DONE]"))
    responses.post("http://127.0.0.1:9/mirror/v3/chat-anonymous", body=ndjson({"event": "text", "data": "e"}))
    base = "http://127.0.0.1:9"
    assert FlowGpt.create(None, MESSAGES_RU, base_url=base) == "a"
    assert GPROChat.create(None, MESSAGES_RU, base_url=base + "/") == "b"
    assert Chatgpt4Online.create(None, MESSAGES_RU, base_url=base) == "c"
    assert Ylokh.create(None, MESSAGES_RU, base_url=base) == "d"
    assert Ylokh.create(None, MESSAGES_RU, base_url=base + "/v1") == "d"  # the OpenAI convention
    assert FlowGpt.create(None, MESSAGES_RU, base_url=base + "/mirror") == "e"


@responses.activate
def test_stream_false_yields_the_whole_reply_once_for_stream_only_protocols():
    responses.post(GPROCHAT_URL, body=body("a", "b", "c"))
    assert list(GPROChat.create_completion(None, MESSAGES_RU, stream=False)) == ["abc"]


@responses.activate
def test_chat_completion_entry_point():
    for _ in range(2):
        responses.post(FLOWGPT_URL, body=body(ndjson({"event": "text", "data": "a"}), ndjson({"event": "text", "data": "b"})))
    assert ChatCompletion.create(model="gpt-3.5-turbo", messages=MESSAGES_RU, provider=FlowGpt) == "ab"
    stream = ChatCompletion.create(model="gpt-3.5-turbo", messages=MESSAGES_RU, provider="FlowGpt", stream=True)
    assert list(stream) == ["a", "b"]


@responses.activate
def test_seed_examples_sync_form():
    """The seeds' example conversations, through the synchronous API."""
    responses.post(FLOWGPT_URL, body=ndjson({"event": "text", "data": "Хорошо!"}))
    responses.post(GPROCHAT_URL, body="Отлично")
    responses.post(NONCE_URL, json={"restNonce": "n"})
    responses.post(SUBMIT_URL, body=sse({"type": "live", "data": "Норм"}, end_event("Нормально")))
    responses.post(YLOKH_URL, body=sse(chunk("Да"), chunk(None, "stop"), "[DONE]"))
    seeds = [
        (FlowGpt, "gpt-3.5-turbo", [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Как дела?"}], "Хорошо!"),
        (FlowGpt, "gpt-3.5-turbo", [{"role": "user", "content": "Hello, how are you?"}], "Хорошо!"),
        (GPROChat, "gemini-1.5-pro", [{"role": "user", "content": "Привет, как дела?"}], "Отлично"),
        (Chatgpt4Online, "gpt-4", [{"role": "user", "content": "Привет, как дела?"}], "Нормально"),
        (Ylokh, "gpt-3.5-turbo", [{"role": "user", "content": "Привет, как дела?"}], "Да"),
    ]
    for provider, model, messages, expected in seeds:
        out = "".join(message for message in provider.create_completion(model=model, messages=messages))
        assert out == expected


@responses.activate
def test_ylokh_reports_finish_reason_usage_and_id_in_metadata():
    final = chunk(None, "length")
    final["usage"] = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    responses.post(YLOKH_URL, body=sse(chunk("Hi"), final, "[DONE]"), content_type="text/event-stream")
    stream = Ylokh.create_completion(None, MESSAGES_RU)
    assert stream.metadata == {}
    assert list(stream) == ["Hi"]
    assert stream.metadata == {
        "id": "chatcmpl-1",
        "created": 1,
        "model": "gpt-3.5-turbo",
        "finish_reason": "length",
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    completion = {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}],
        "usage": {"total_tokens": 1},
    }
    responses.post(YLOKH_URL, json=completion)
    stream = Ylokh.create_completion(None, MESSAGES_RU, stream=False)
    assert list(stream) == ["x"]
    assert stream.metadata["finish_reason"] == "stop" and stream.metadata["usage"] == {"total_tokens": 1}


# -- moved from the review-fix file: each names what used to go wrong ---------------------------


def test_frame_caps_are_per_provider():
    from llmproviders import Chatgpt4Online, FlowGpt
    from llmproviders._framing import MAX_FRAME

    assert FlowGpt.max_frame_size == MAX_FRAME == 8 * 1024 * 1024
    assert Chatgpt4Online.max_frame_size > 100 * 1024 * 1024  # its end event repeats the reply
