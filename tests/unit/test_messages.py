"""Messages as OpenAI-compatible servers take them today (parts, images, tool calls,
tool results, developer, reasoning), checked before any I/O; ``image()``; and
``text_messages()`` for the plain-text seed providers."""

import base64
import copy
import json

import pytest
import responses

import llmproviders
from llmproviders import (
    FlowGpt,
    GPROChat,
    Chatgpt4Online,
    InvalidArgumentError,
    InvalidMessagesError,
    OpenAICompatible,
    Ylokh,
    format_prompt,
    image,
)
from llmproviders._messages import ROLES, text_messages, validate_messages

BASE = "http://127.0.0.1:9/v1"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
CONVERSATION = [
    {"role": "developer", "content": "Answer briefly."},
    {"role": "system", "content": [{"type": "text", "text": "You are terse."}]},
    {"role": "user", "name": "alice", "content": [
        {"type": "text", "text": "What is this, and the weather in Oslo?"},
        {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.jpg?sig=abc"}},
    ]},
    {"role": "assistant", "content": None, "reasoning_content": "Need the weather tool.", "tool_calls": [TOOL_CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 4}'},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "sunny"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A pixel; 4 degrees."}], "x-kept": {"any": [1, 2]}},
    {"role": "user", "content": "thanks"},
]


def test_roles():
    assert set(ROLES) == {"system", "user", "assistant", "tool", "developer"}


def test_the_shapes_of_todays_servers_are_accepted_and_kept_as_sent():
    before = copy.deepcopy(CONVERSATION)
    checked = validate_messages(CONVERSATION)
    assert checked == before and CONVERSATION == before  # nothing dropped, added or changed
    assert checked[3]["reasoning_content"] == "Need the weather tool." and checked[6]["x-kept"] == {"any": [1, 2]}


def test_an_openai_python_message_dump_is_accepted():
    # openai-python's ChatCompletionMessage.model_dump(): None for every absent field.
    dumped = {"role": "assistant", "content": "hi", "tool_calls": None, "function_call": None,
              "refusal": None, "audio": None, "reasoning_content": None}
    assert validate_messages([{"role": "user", "content": "hey"}, dumped])[1] == dumped


@responses.activate
def test_openai_compatible_sends_every_message_field_as_given():
    responses.add(responses.POST, BASE + "/chat/completions", json={
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})
    assert OpenAICompatible.create("m", CONVERSATION, base_url=BASE, stream=False) == "ok"
    sent = json.loads(responses.calls[0].request.body)
    assert sent["messages"] == CONVERSATION


BAD = [
    # content
    ([{"role": "user", "content": []}], "messages[0] has an empty list as content"),
    ([{"role": "user", "content": None}], "messages[0] has content of type NoneType; content must be a string or a list of parts"),
    ([{"role": "system"}], "messages[0] has no 'content'"),
    ([{"role": "assistant", "content": None}], "(or None when the message has 'tool_calls')"),
    ([{"role": "user", "content": [{"text": "x"}]}], "messages[0].content[0] has no 'type'"),
    ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], "messages[0].content[0] has type 'input_audio'; user messages take parts of type 'text', 'image_url'"),
    ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0] has no 'text'"),
    ([{"role": "user", "content": [{"type": "text", "text": 3}]}], "messages[0].content[0] has 'text' of type int"),
    ([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}], "system messages take parts of type 'text'; images go in user messages"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}], "messages[1].content[0] has type 'image_url'; assistant messages"),
    # images
    ([{"role": "user", "content": [{"type": "image_url", "image_url": "https://h/x.png"}]}], "messages[0].content[0] has 'image_url' of type str; an image part is {'type': 'image_url', 'image_url': {'url': ...}}"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "messages[0].content[0].image_url has no 'url'"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}], "messages[0].content[0].image_url.url is a 'file' URL; give an http(s) URL or a base64 data URL"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "cat.png"}}]}], "is not a URL"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://"}}]}], "is an https URL without a valid host; give an http(s) URL"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://h:99999/x.png"}}]}], "is an http URL without a valid host"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}]}], "is a data URL but not 'data:image/<type>;base64,<data>'"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}], "is a data URL but not"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,"}}]}], "whose data is not base64 (or is empty)"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO R\n"}}]}], "whose data is not base64"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL, "detail": "max"}}]}], "messages[0].content[0].image_url.detail is 'max'; expected one of 'auto', 'low', 'high'"),
    # tool messages
    ([{"role": "tool", "content": "4"}], "messages[0] (tool) has no 'tool_call_id'; a tool result needs the string id"),
    ([{"role": "tool", "tool_call_id": 7, "content": "4"}], "has a 'tool_call_id' of type int"),
    ([{"role": "tool", "tool_call_id": "c"}], "messages[0] has no 'content'"),
    ([{"role": "tool", "tool_call_id": "c", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]}], "tool messages take parts of type 'text'"),
    # tool calls
    ([{"role": "user", "content": "x", "tool_calls": [TOOL_CALL]}], "messages[0] (user) has 'tool_calls'; only assistant messages carry tool calls"),
    ([{"role": "assistant", "content": None, "tool_calls": TOOL_CALL}], "messages[0] has 'tool_calls' of type dict; expected OpenAI's shape"),
    ([{"role": "assistant", "content": None, "tool_calls": []}], "messages[0] has content of type NoneType"),
    ([{"role": "assistant", "content": None, "tool_calls": ["call_1"]}], "messages[0].tool_calls[0] must be a dict, not str"),
    ([{"role": "assistant", "content": None, "tool_calls": [{**TOOL_CALL, "id": ""}]}], "messages[0].tool_calls[0] needs a non-empty string 'id'"),
    ([{"role": "assistant", "content": None, "tool_calls": [{**TOOL_CALL, "type": "code"}]}], "messages[0].tool_calls[0] has type 'code'; tool calls have type 'function'"),
    ([{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": TOOL_CALL["function"]}]}], "messages[0].tool_calls[0] has no 'type'"),
    ([{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]}], "messages[0].tool_calls[0] needs 'function'"),
    ([{"role": "assistant", "content": None, "tool_calls": [{**TOOL_CALL, "function": {"arguments": "{}"}}]}], "messages[0].tool_calls[0].function needs a non-empty string 'name'"),
    ([{"role": "assistant", "content": None, "tool_calls": [{**TOOL_CALL, "function": {"name": "f", "arguments": {"city": "Oslo"}}}]}], "messages[0].tool_calls[0].function has 'arguments' of type dict; arguments are a JSON text (json.dumps() them)"),
    ([{"role": "assistant", "content": None, "tool_calls": [{**TOOL_CALL, "function": {"name": "f"}}]}], "has no 'arguments'"),
    # other fields
    ([{"role": "assistant", "content": "x", "reasoning_content": ["think"]}], "messages[0] has 'reasoning_content' of type list; it must be a string"),
    ([{"role": "user", "content": "x", "name": 5}], "messages[0] has a 'name' of type int; name must be a non-empty string"),
    ([{"role": "user", "content": "x", "name": ""}], "name must be a non-empty string"),
    ([{"role": "function", "content": "x"}], "messages[0] has role 'function'; expected one of 'system', 'user', 'assistant', 'tool', 'developer'"),
]


@pytest.mark.parametrize("messages, fragment", BAD)
@responses.activate  # any network access would fail the test with ConnectionError
def test_malformed_messages_say_which_and_why_before_any_io(messages, fragment):
    for call in (
        lambda: OpenAICompatible.create_completion("m", messages, base_url=BASE),
        lambda: FlowGpt.create_completion(None, messages),
        lambda: llmproviders.RetryProvider([Ylokh]).create_completion(None, messages),
    ):
        with pytest.raises(InvalidMessagesError) as info:
            call()
        assert fragment in str(info.value)
    assert len(responses.calls) == 0


def test_image_urls_are_never_echoed_in_errors():
    secret = "https://bucket.test/cat.png?X-Amz-Signature=S3CRET"
    bad = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": secret, "detail": "huge"}}]}]
    with pytest.raises(InvalidMessagesError) as info:
        validate_messages(bad)
    assert "S3CRET" not in str(info.value)
    with pytest.raises(InvalidMessagesError) as info:
        validate_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://u:S3CRET@h/x"}}]}])
    assert "S3CRET" not in str(info.value)


@pytest.mark.parametrize(
    "message, where",
    [
        ({"role": "user", "content": "ab\ud800cd"}, "messages[1].content has a lone surrogate (U+D800) at character 2"),
        ({"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "text", "text": "\udcff"}]}, "messages[1].content[1].text has a lone surrogate (U+DCFF) at character 0"),
        ({"role": "user", "content": "x", "name": "al\udc80ice"}, "messages[1].name has a lone surrogate (U+DC80) at character 2"),
        ({"role": "assistant", "content": None, "tool_calls": [{**TOOL_CALL, "function": {"name": "f", "arguments": '{"a": "\ud83d"}'}}]},
         "messages[1].tool_calls[0].function.arguments has a lone surrogate (U+D83D) at character 7"),
        ({"role": "user", "content": "x", "extra": {"deep": [["é\udfff"]]}}, "messages[1].extra.deep[0][0] has a lone surrogate (U+DFFF) at character 1"),
        ({"role": "user", "content": "x", "extra": {"k\ud800": 1}}, "a key of messages[1].extra has a lone surrogate (U+D800) at character 1"),
    ],
)
@responses.activate
def test_lone_surrogates_are_refused_with_their_position_before_any_io(message, where):
    messages = [{"role": "user", "content": "fine: é ✓ 😀"}, message]
    for provider in (FlowGpt, GPROChat, Chatgpt4Online, Ylokh):
        with pytest.raises(InvalidMessagesError) as info:
            provider.create_completion(None, messages)
        assert where in str(info.value) and "valid Unicode" in str(info.value)
    with pytest.raises(InvalidMessagesError, match="lone surrogate"):
        OpenAICompatible.create_completion("m", messages, base_url=BASE)
    assert len(responses.calls) == 0


def test_a_surrogate_pair_written_properly_is_fine():
    assert validate_messages([{"role": "user", "content": "\U0001f600 ok"}])[0]["content"] == "😀 ok"


# -- image() -----------------------------------------------------------------------


@pytest.mark.parametrize("data, mime", [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")])
def test_image_from_bytes_guesses_the_type_from_magic_bytes(data, mime):
    for given in (data, bytearray(data), memoryview(data)):
        part = image(given)
        assert part == {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}
    validate_messages([{"role": "user", "content": [{"type": "text", "text": "what?"}, part]}])


def test_image_from_a_path_str_or_pathlike(tmp_path):
    path = tmp_path / "photo.unknown-ext"
    path.write_bytes(JPEG)
    for given in (path, str(path)):
        url = image(given)["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,") and base64.b64decode(url.split(",", 1)[1]) == JPEG


def test_image_type_from_the_file_name_when_the_bytes_do_not_say(tmp_path):
    path = tmp_path / "drawing.bmp"
    path.write_bytes(b"BM\x00\x00rest-of-a-bitmap")
    assert image(path)["image_url"]["url"].startswith("data:image/bmp;base64,")
    misnamed = tmp_path / "really-a-png.jpg"
    misnamed.write_bytes(PNG)
    assert image(misnamed)["image_url"]["url"].startswith("data:image/png;base64,")  # the bytes win


def test_image_with_explicit_mime_and_detail():
    part = image(b"\x00\x01raw", mime="image/avif", detail="high")
    assert part["image_url"] == {"url": "data:image/avif;base64,AAFyYXc=", "detail": "high"}
    validate_messages([{"role": "user", "content": [part]}])


def test_image_errors_are_clear(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"image file not found: '.*nope\.png'"):
        image(tmp_path / "nope.png")
    with pytest.raises(InvalidArgumentError, match="cannot read image file"):
        image(tmp_path)  # a directory
    with pytest.raises(InvalidArgumentError, match=r"cannot tell the image type of bytes \(PNG, JPEG, GIF and WebP are recognised\): pass mime='image/...'"):
        image(b"not an image")
    unknown = tmp_path / "blob.dat"
    unknown.write_bytes(b"not an image")
    with pytest.raises(InvalidArgumentError, match="cannot tell the image type of file '.*blob.dat'"):
        image(unknown)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="is empty"):
        image(empty)
    with pytest.raises(InvalidArgumentError, match="empty bytes"):
        image(b"")
    with pytest.raises(InvalidArgumentError, match="mime must be an image type such as 'image/png', not 'text/plain'"):
        image(PNG, mime="text/plain")
    with pytest.raises(InvalidArgumentError, match="detail must be one of"):
        image(PNG, detail="max")
    with pytest.raises(InvalidArgumentError, match="takes a file path or the image's bytes, not int"):
        image(5)  # type: ignore[arg-type]


def test_image_is_exported():
    assert llmproviders.image is image and "image" in llmproviders.__all__


# -- text_messages() ---------------------------------------------------------------


def test_text_messages_joins_text_parts_for_the_plain_text_providers():
    messages = validate_messages([
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "Line one"}, {"type": "text", "text": "line two"}], "name": "bo"},
        {"role": "assistant", "content": "Sure.", "reasoning_content": "easy"},
        {"role": "user", "content": "Go"},
    ])
    before = copy.deepcopy(messages)
    flat = text_messages(messages, "FlowGpt")
    assert messages == before  # the caller's list is not changed
    assert [m["content"] for m in flat] == ["Be brief.", "Line one\nline two", "Sure.", "Go"]
    assert flat[1]["name"] == "bo" and flat[2]["reasoning_content"] == "easy"
    assert format_prompt(flat) == "Developer: Be brief.\nUser: Line one\nline two\nAssistant: Sure.\nUser: Go\nAssistant:"
    assert format_prompt(text_messages([{"role": "user", "content": [{"type": "text", "text": "only"}]}], "GPROChat")) == "only"


@pytest.mark.parametrize(
    "message, fragment",
    [
        ({"role": "user", "content": [{"type": "text", "text": "see"}, image(PNG)]}, "messages[1].content[1] is an image; GPROChat takes text only"),
        ({"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}, "messages[1] has 'tool_calls'; GPROChat knows nothing of tools"),
        ({"role": "tool", "tool_call_id": "call_1", "content": "4"}, "messages[1] is a 'tool' message; GPROChat sends one plain-text prompt"),
    ],
)
def test_text_messages_refuses_what_plain_text_cannot_carry(message, fragment):
    messages = validate_messages([{"role": "user", "content": "hi"}, message])
    with pytest.raises(InvalidMessagesError) as info:
        text_messages(messages, "GPROChat")
    assert str(info.value).startswith("GPROChat: ") and fragment in str(info.value)
    assert "use an OpenAI-compatible provider (OpenAICompatible" in str(info.value)
    assert info.value.provider == "GPROChat"


@pytest.mark.parametrize(
    "extra",
    [{"meta": {1, 2}}, {"meta": float("nan")}, {("a", "b"): "tuple key"}, {"meta": object()}, {"meta": [float("inf")]}],
    ids=["set", "nan", "tuple-key", "object", "inf-in-list"],
)
@responses.activate
def test_a_message_that_is_not_plain_json_is_refused_before_any_io(extra):
    """The check of JSON-ability has a short way for string-only messages; anything else
    still takes the whole check."""
    message = {"role": "user", "content": "hi", **extra}
    with pytest.raises(InvalidArgumentError, match="plain JSON values"):
        OpenAICompatible.create_completion("gpt-4", [message], base_url="http://127.0.0.1:9")
    assert len(responses.calls) == 0
