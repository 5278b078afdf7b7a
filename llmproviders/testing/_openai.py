"""The OpenAI chat-completions protocol, in the dialects of the servers that speak it.

``POST /v1/chat/completions`` is where Ylokh, openai-python and every
OpenAI-compatible client send their requests (llama.cpp's ``llama-server``, vLLM,
Ollama's ``/v1``, LM Studio, OpenAI, DeepSeek...), and ``GET /v1/models`` lists
models. The chat endpoint accepts what a modern client sends (content parts,
images as data URLs, tool messages, ``tools``, ``reasoning_effort``, ``logprobs``,
``n``, ``response_format``, server-specific fields) and refuses, with 400, what
real servers refuse.

A reply is decided in two steps. First the request and the dialect options give
an :class:`Answer`: reasoning, text, tool calls or a refusal, and a finish reason.
Then the answer is written in the dialect's shape, as one JSON completion or as
SSE chunks. The options are checked by :func:`check_dialect`; :data:`DIALECTS`
names presets for the servers described in ``DIALECTS.md``. Without any option the
endpoint answers as OpenAI does, and runs a tool loop on its own: a request with
``tools`` whose last message is from the user gets a call to the first tool
(arguments from its JSON schema, see :func:`arguments_for`), and a conversation
that ends with tool results gets a reply quoting them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ._model import RecordedRequest
from ._protocols import (
    OPENAI_MODELS,
    OPENAI_MODELS_PATH,
    YLOKH_PATH,
    Endpoint,
    Fixed,
    Frame,
    Rejection,
    Reply,
    Stream,
    content_text,
    dumps,
    json_reply,
    pieces_for,
    question_for,
    reply_for,
    scripted_text,
)

_MODELS_CREATED = 1_700_000_000

THINKING_FORMAT = "Думаю о «{q}»: the question is clear 🤔"
"""The reasoning text for question ``q`` when the ``thinking`` option does not give one."""

REFUSAL_TEXT = "Извините, I can't help with that."
"""The refusal for ``refusal=True``."""

REASONING_FORMATS = ("reasoning_content", "reasoning", "think")
TOOL_CALL_STYLES = (
    "standard",
    "no_index",
    "reused_index",
    "index_from_1",
    "whole",
    "interleaved",
    "object_arguments",
    "repeated",
)
USAGE_MODES = ("request", "final", "every", "none")
CONTEXT_OVERFLOWS = ("llama.cpp", "openai")
DONE_ENDINGS = {"blank_line": b"\n\n", "newline": b"\n", "none": b""}
DEFAULT_CONTEXT_WINDOW = 4096
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(;[\w-]+=[\w.+-]+)*;base64,(.*)", re.DOTALL)
_STANDARD_STREAM_ERROR = {"message": "The server had an error while processing your request.", "type": "server_error"}

DIALECTS: Dict[str, Mapping[str, Any]] = {
    "openai": {},
    "llama.cpp": {"reasoning": "reasoning_content", "usage": "final", "timings": True},
    "deepseek": {"reasoning": "reasoning_content", "require_reasoning_content": True},
    "vllm": {"reasoning": "reasoning", "tool_call_style": "reused_index"},
    "ollama": {"reasoning": "reasoning", "tool_call_style": "whole"},
    "lmstudio": {"reasoning": "reasoning_content"},
    "gemini": {"tool_call_style": "no_index", "finish_reason": "stop"},
    "llama-cpp-python": {"tool_call_style": "repeated"},
}
"""Presets: the options that make the endpoint answer like a (reasoning) model served
by that server, as ``DIALECTS.md`` describes it."""


# -- dialect options ---------------------------------------------------------------


def _one_of(*choices: str) -> Callable[[Any], Optional[str]]:
    return lambda value: None if value in choices else f"must be one of {', '.join(map(repr, choices))}"


def _flag(value: Any) -> Optional[str]:
    return None if isinstance(value, bool) else "must be True or False"


def _text(value: Any) -> Optional[str]:
    return None if isinstance(value, str) else "must be a str"


def _count(value: Any) -> Optional[str]:
    return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else "must be an int >= 1"


def _refusal(value: Any) -> Optional[str]:
    return None if isinstance(value, (bool, str)) else "must be a str (the refusal), True or False"


def _stream_error(value: Any) -> Optional[str]:
    return None if isinstance(value, (dict, str)) else "must be a dict (the error object) or a str (its message)"


def _tool_calls(value: Any) -> Optional[str]:
    problem = "must be a list of {'name': str, 'arguments': dict or str, 'id': str (optional)}"
    if not isinstance(value, (list, tuple)) or not value:
        return problem
    for call in value:
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) or set(call) - {"name", "arguments", "id"}:
            return problem
        if not isinstance(call.get("arguments", {}), (dict, str)) or not isinstance(call.get("id", ""), str):
            return problem
    return None


DIALECT_OPTIONS: Dict[str, Callable[[Any], Optional[str]]] = {
    "reasoning": _one_of(*REASONING_FORMATS),
    "thinking": _text,
    "unfinished_reasoning": _flag,
    "tool_calls": _tool_calls,
    "tool_call_style": _one_of(*TOOL_CALL_STYLES),
    "finish_reason": _text,
    "usage": _one_of(*USAGE_MODES),
    "timings": _flag,
    "refusal": _refusal,
    "choices": _count,
    "context_overflow": _one_of(*CONTEXT_OVERFLOWS),
    "context_window": _count,
    "require_reasoning_content": _flag,
    "stream_error": _stream_error,
    "stream_error_event": _flag,
    "invalid_utf8": _flag,
    "utf16_bom_line": _flag,
    "leading_bom": _flag,
    "done_ending": _one_of(*DONE_ENDINGS),
}
"""Every dialect option and its check (a function returning what is wrong, or None)."""


def check_dialect(options: Mapping[str, Any]) -> Dict[str, Any]:
    """``options`` as a dict, or ``ValueError`` naming the first unknown or bad option."""
    checked: Dict[str, Any] = {}
    for name, value in options.items():
        check = DIALECT_OPTIONS.get(name)
        if check is None:
            raise ValueError(f"unknown dialect option {name!r}; options: {', '.join(DIALECT_OPTIONS)}")
        problem = check(value)
        if problem:
            raise ValueError(f"dialect option {name} {problem}, not {value!r:.80}")
        checked[name] = value
    return checked


def parse_dialect(spec: Union[str, Mapping[str, Any], None]) -> Dict[str, Any]:
    """The options of a dialect given as a mapping, or as a string of comma-separated
    preset names and ``option=value`` items (``"llama.cpp,tool_call_style=whole"``;
    a bare option name means True). Later items win. Raises ``ValueError``."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return check_dialect(spec)
    if not isinstance(spec, str):
        raise ValueError(f"a dialect is a preset name, an option string or a mapping, not {spec!r:.80}")
    options: Dict[str, Any] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, equals, value = item.partition("=")
        name = name.strip()
        if not equals and name in DIALECTS:
            options.update(DIALECTS[name])
        elif not equals and name not in DIALECT_OPTIONS:
            raise ValueError(f"unknown dialect {name!r}; presets: {', '.join(DIALECTS)}; options: {', '.join(DIALECT_OPTIONS)}")
        else:
            options[name] = _spec_value(value.strip()) if equals else True
    return check_dialect(options)


def _spec_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return int(text) if text.isdigit() else text


def split_model(model: str) -> Tuple[str, Dict[str, Any]]:
    """``"name@spec"`` -> the name and the options of ``spec`` (see :func:`parse_dialect`).

    Only a suffix made of preset and option names is a spec: in ``"@cf/meta/llama-3"``
    or ``"user@example"`` the ``@`` is part of the model's name. A spec with a bad
    value raises ``ValueError``.
    """
    name, at, spec = model.rpartition("@")
    names = [item.partition("=")[0].strip() for item in spec.split(",") if item.strip()]
    if not at or not names or not all(n in DIALECTS or n in DIALECT_OPTIONS for n in names):
        return model, {}
    return name, parse_dialect(spec)


# -- requests ----------------------------------------------------------------------


@dataclass
class ChatRequest:
    """The parts of a validated chat request that shape the answer."""

    model: str
    messages: List[Dict[str, Any]]
    stream: bool
    include_usage: bool
    tools: List[Dict[str, Any]]
    tool_choice: Any
    logprobs: bool
    top_logprobs: int
    n: int
    dialect: Dict[str, Any] = field(default_factory=dict)

    @property
    def question(self) -> str:
        return question_for(self.messages)


def check_bearer(request: RecordedRequest, api_key: Optional[str]) -> None:
    """With ``api_key`` set, require ``Authorization: Bearer <api_key>`` (401 otherwise,
    in OpenAI's error shape)."""
    if api_key is not None and request.headers.get("authorization", "") != f"Bearer {api_key}":
        error = {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}
        raise Rejection(json_reply(401, {"error": error}))


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is(kind: type) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, kind)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_range(low: Optional[int] = None, high: Optional[int] = None) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        return (low is None or value >= low) and (high is None or value <= high)

    return check


def _is_stop(value: Any) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, list) and len(value) <= 4 and all(isinstance(item, str) for item in value)


class _Checker:
    """Validates a chat request body the way OpenAI does, with its endpoint's errors."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.reject = endpoint.reject

    def optional(self, body: Mapping[str, Any], key: str, ok: Callable[[Any], bool], what: str) -> Any:
        value = body.get(key)
        if value is not None and not ok(value):
            self.reject(400, f"{key} must be {what}, got {value!r:.80}")
        return value

    def request(self, body: Dict[str, Any]) -> ChatRequest:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self.reject(400, "messages must be a non-empty list of message objects")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self.reject(400, "model must be a non-empty str")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            self.reject(400, f"stream must be a bool, got {stream!r:.80}")
        stream_options = self.optional(body, "stream_options", _is(dict), "an object")
        for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
            self.optional(body, key, _is_number, "a number")
        for key in ("max_tokens", "max_completion_tokens"):
            self.optional(body, key, _in_range(1), "an int >= 1")
        self.optional(body, "seed", _in_range(), "an int")
        self.optional(body, "parallel_tool_calls", _is(bool), "a bool")
        self.optional(body, "reasoning_effort", _is(str), "a str (low, medium, high...)")
        self.optional(body, "user", _is(str), "a str")
        self.optional(body, "stop", _is_stop, "a str or a list of up to 4 str")
        logprobs = self.optional(body, "logprobs", _is(bool), "a bool")
        top_logprobs = self.optional(body, "top_logprobs", _in_range(0, 20), "an int from 0 to 20")
        if top_logprobs is not None and not logprobs:
            self.reject(400, "top_logprobs needs logprobs: true")
        n = self.optional(body, "n", _in_range(1, 128), "an int from 1 to 128")
        self._response_format(body.get("response_format"))
        tools = self._tools(body.get("tools"))
        tool_choice = self._tool_choice(body.get("tool_choice"), tools)
        self._messages(messages)
        return ChatRequest(
            model=model,
            messages=messages,
            stream=stream,
            include_usage=bool(stream_options and stream_options.get("include_usage")),
            tools=tools,
            tool_choice=tool_choice,
            logprobs=bool(logprobs),
            top_logprobs=top_logprobs or 0,
            n=n or 1,
        )

    def _response_format(self, value: Any) -> None:
        if value is None:
            return
        kind = value.get("type") if isinstance(value, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            self.reject(400, f"response_format.type must be 'text', 'json_object' or 'json_schema', got {value!r:.80}")
        if kind == "json_schema":
            schema = value.get("json_schema")
            if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
                self.reject(400, "response_format.json_schema must be an object with a name (and a schema)")
            if not isinstance(schema.get("schema", {}), dict):
                self.reject(400, "response_format.json_schema.schema must be a JSON schema object")

    def _tools(self, value: Any) -> List[Dict[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.reject(400, f"tools must be a list, got {_kind(value)}")
        for index, tool in enumerate(value):
            where = f"tools[{index}]"
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
                self.reject(400, f"{where} must be {{'type': 'function', 'function': {{'name': ..., 'parameters': ...}}}}")
            function = tool["function"]
            if not isinstance(function.get("name"), str) or not _TOOL_NAME.fullmatch(function["name"]):
                self.reject(400, f"{where}.function.name must be a name of letters, digits, '_' or '-', got {function.get('name')!r:.80}")
            if not isinstance(function.get("parameters", {}), dict):
                self.reject(400, f"{where}.function.parameters must be a JSON schema object")
            if not isinstance(function.get("description", ""), str):
                self.reject(400, f"{where}.function.description must be a str")
        return value

    def _tool_choice(self, value: Any, tools: List[Dict[str, Any]]) -> Any:
        if value is None or value in ("none", "auto"):
            return value or "auto"
        names = [tool["function"]["name"] for tool in tools]
        if value == "required":
            if not tools:
                self.reject(400, "tool_choice 'required' needs tools")
            return value
        named = value.get("function", {}).get("name") if isinstance(value, dict) and isinstance(value.get("function"), dict) else None
        if not isinstance(value, dict) or value.get("type") != "function" or not isinstance(named, str):
            self.reject(400, f"tool_choice must be 'none', 'auto', 'required' or {{'type': 'function', 'function': {{'name': ...}}}}, got {value!r:.80}")
        if named not in names:
            self.reject(400, f"tool_choice names {named!r}, which is not in tools ({', '.join(names) or 'none given'})")
        return value

    def _messages(self, messages: List[Any]) -> None:
        call_ids: List[str] = []
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if not isinstance(message, dict):
                self.reject(400, f"{where} must be an object with a role and a content")
            role = message.get("role")
            if role not in ROLES:
                self.reject(400, f"{where}.role must be one of {', '.join(ROLES)}, got {role!r:.80}")
            self.optional(message, "name", _is(str), "a str")
            content = message.get("content")
            if role in ("system", "developer"):
                self._content(where, content, ("text",), required=True)
            elif role == "user":
                self._content(where, content, ("text", "image_url", "input_audio", "file"), required=True)
            elif role == "assistant":
                calls = message.get("tool_calls")
                if calls is not None:
                    call_ids += self._assistant_calls(where, calls)
                has_call = bool(calls) or message.get("function_call") is not None
                self._content(where, content, ("text", "refusal"), required=not has_call)
                self.optional(message, "reasoning_content", _is(str), "a str")
                self.optional(message, "refusal", _is(str), "a str")
            elif role == "tool":
                call_id = message.get("tool_call_id")
                if not isinstance(call_id, str) or not call_id:
                    self.reject(400, f"{where}: a tool message needs tool_call_id (the id of the call it answers)")
                if call_id not in call_ids:
                    self.reject(
                        400,
                        f"{where}: messages with role 'tool' must be a response to a preceding message with "
                        f"'tool_calls' (no call has the id {call_id!r})",
                    )
                self._content(where, content, ("text",), required=True)
            else:  # function: the legacy form of a tool result
                if not isinstance(message.get("name"), str):
                    self.reject(400, f"{where}: a function message needs the function's name")
                self._content(where, content, ("text",), required=False)

    def _content(self, where: str, content: Any, parts: Sequence[str], *, required: bool) -> None:
        if content is None:
            if required:
                self.reject(400, f"{where}.content is required (a str or a list of content parts)")
            return
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            self.reject(400, f"{where}.content must be a str or a list of content parts, got {_kind(content)}")
        for number, part in enumerate(content):
            here = f"{where}.content[{number}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in parts:
                self.reject(400, f"{here} must be a content part of type {', '.join(parts)}, got {part!r:.80}")
            if kind in ("text", "refusal") and not isinstance(part.get(kind), str):
                self.reject(400, f"{here}.{kind} must be a str")
            if kind == "image_url":
                self._image(here, part.get("image_url"))
            if kind in ("input_audio", "file") and not isinstance(part.get(kind), dict):
                self.reject(400, f"{here}.{kind} must be an object")

    def _image(self, where: str, image: Any) -> None:
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str):
            self.reject(400, f"{where}.image_url must be {{'url': 'data:image/...;base64,...' or 'https://...'}}")
        if image.get("detail", "auto") not in ("auto", "low", "high"):
            self.reject(400, f"{where}.image_url.detail must be 'auto', 'low' or 'high'")
        if url.startswith(("http://", "https://")):
            return
        match = _DATA_URL.fullmatch(url)
        if match is None:
            self.reject(400, f"{where}.image_url.url must be an http(s) URL or a base64 data URL, got {url[:40]!r}")
        try:
            base64.b64decode(match.group(3), validate=True)
        except (binascii.Error, ValueError):
            self.reject(400, f"{where}.image_url.url: the data URL is not valid base64")

    def _assistant_calls(self, where: str, calls: Any) -> List[str]:
        if not isinstance(calls, list):
            self.reject(400, f"{where}.tool_calls must be a list")
        ids = []
        for number, call in enumerate(calls):
            here = f"{where}.tool_calls[{number}]"
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not isinstance(function, dict):
                self.reject(400, f"{here} must be {{'id': str, 'type': 'function', 'function': {{'name', 'arguments'}}}}")
            if call.get("type", "function") != "function":
                self.reject(400, f"{here}.type must be 'function'")
            if not isinstance(function.get("name"), str) or not isinstance(function.get("arguments"), str):
                self.reject(400, f"{here}.function needs a name and arguments, both str (arguments is JSON text)")
            ids.append(call["id"])
        return ids


# -- the answer --------------------------------------------------------------------


@dataclass
class Call:
    """One tool call of an answer."""

    id: str
    name: str
    arguments: str
    arguments_object: Any


@dataclass
class Answer:
    """What the reply says, before it is written in a dialect's shape.

    ``content`` is ``None`` for ``content: null``; ``content_pieces`` are how it is
    streamed (with the think tags when reasoning is in ``content``).
    """

    reasoning: Optional[str]
    thinking: Optional[str]
    thinking_pieces: List[str]
    content: Optional[str]
    content_pieces: List[str]
    calls: List[Call]
    refusal: Optional[str]
    finish_reason: str

    def completion_tokens(self) -> int:
        texts = [self.content or "", self.refusal or ""] + [call.arguments for call in self.calls]
        if self.reasoning in ("reasoning_content", "reasoning"):
            texts.append(self.thinking or "")
        return sum(len(text.split()) for text in texts)


def thinking_for(conversation: Sequence[Mapping[str, Any]]) -> str:
    """The reasoning text the emulator sends for a conversation (without the ``thinking`` option)."""
    return THINKING_FORMAT.format(q=question_for(conversation))


def arguments_for(schema: Any, question: str) -> Dict[str, Any]:
    """The arguments of the emulator's automatic tool call: one value per *required*
    property of the JSON schema ``schema``, chosen by the property's schema:

    - ``enum``: its first value; ``const`` or ``default``: that value;
    - ``"string"`` (or no type): the question; ``"integer"``/``"number"``: 1;
      ``"boolean"``: true; ``"array"``: []; ``"null"``: null;
    - ``"object"``: the arguments for that sub-schema, recursively.
    """
    if not isinstance(schema, Mapping):
        return {}
    properties: Mapping[str, Any] = schema["properties"] if isinstance(schema.get("properties"), Mapping) else {}
    required: List[Any] = schema["required"] if isinstance(schema.get("required"), list) else []
    return {name: _value_for(properties.get(name, {}), question) for name in required if isinstance(name, str)}


def _value_for(schema: Any, question: str) -> Any:
    if not isinstance(schema, Mapping):
        return question
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return arguments_for(schema, question)
    values: Dict[Any, Any] = {"integer": 1, "number": 1, "boolean": True, "array": [], "null": None}
    return values.get(kind, question) if isinstance(kind, str) else question


def _call_id(*parts: Any) -> str:
    return "call_" + hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:24]


def _answer(request: ChatRequest, options: Mapping[str, Any]) -> Answer:
    question = request.question
    reasoning = options.get("reasoning")
    if reasoning is None and ("thinking" in options or options.get("unfinished_reasoning")):
        reasoning = "reasoning_content"
    thinking = options.get("thinking", THINKING_FORMAT.format(q=question)) if reasoning else None
    unfinished = bool(reasoning and options.get("unfinished_reasoning"))
    refusal = options.get("refusal")
    refusal = REFUSAL_TEXT if refusal is True else None if refusal is False else refusal
    calls: List[Call] = []
    content: Optional[str] = None
    pieces: List[str] = []
    if not unfinished and refusal is None:
        calls = _planned_calls(request, options["tool_calls"]) if "tool_calls" in options else _tool_loop(request)
        if {"reply", "pieces", "long_reply"} & options.keys():
            content, pieces = scripted_text(question, options)
        elif not calls:
            content = reply_for(request.messages)
            pieces = pieces_for(content)
    thinking_pieces = pieces_for(thinking) if thinking else []
    if reasoning == "think":
        opened = "<think>" + (thinking or "")
        content = opened + ("" if unfinished else "</think>\n\n" + (content or ""))
        pieces = ["<th", "ink>"] + thinking_pieces + ([] if unfinished else ["</th", "ink>\n\n"] + pieces)
    default_finish = "length" if unfinished else "tool_calls" if calls else "stop"
    return Answer(
        reasoning=reasoning,
        thinking=thinking,
        thinking_pieces=thinking_pieces,
        content=content,
        content_pieces=pieces,
        calls=calls,
        refusal=refusal,
        finish_reason=options.get("finish_reason", default_finish),
    )


def _planned_calls(request: ChatRequest, planned: Sequence[Mapping[str, Any]]) -> List[Call]:
    calls = []
    for index, call in enumerate(planned):
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            text = arguments
            try:
                value: Any = json.loads(arguments)
            except ValueError:
                value = arguments
        else:
            text, value = dumps(arguments), arguments
        calls.append(Call(call.get("id") or _call_id(request.question, call["name"], index), call["name"], text, value))
    return calls


def _tool_loop(request: ChatRequest) -> List[Call]:
    """The automatic tool call: with tools, when the last message is from the user
    (``tool_choice`` ``"auto"``, the default) or always (``"required"`` or a named
    tool); never with ``tool_choice: "none"``."""
    if not request.tools or request.tool_choice == "none":
        return []
    if request.tool_choice == "auto" and request.messages[-1].get("role") != "user":
        return []
    if isinstance(request.tool_choice, dict):
        name = request.tool_choice["function"]["name"]
        tool = next(t for t in request.tools if t["function"]["name"] == name)
    else:
        tool = request.tools[0]
    function = tool["function"]
    arguments = arguments_for(function.get("parameters", {}), request.question)
    call_id = _call_id(request.question, function["name"], len(request.messages))
    return [Call(call_id, function["name"], dumps(arguments), arguments)]


def usage_for(request: ChatRequest, completion_tokens: int) -> Dict[str, int]:
    """Token counts as the emulator reports them: words of the messages' text, and of the reply."""
    prompt_tokens = prompt_tokens_for(request.messages)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def prompt_tokens_for(messages: Sequence[Mapping[str, Any]]) -> int:
    """The emulator's prompt token count: the words of every message's text."""
    return sum(len(content_text(message.get("content")).split()) for message in messages)


def _timings(usage: Mapping[str, int]) -> Dict[str, float]:
    """llama.cpp's ``timings``, made up deterministically from the token counts."""
    prompt_n, predicted_n = usage["prompt_tokens"], usage["completion_tokens"]
    prompt_ms, predicted_ms = round(2.5 * prompt_n + 0.1, 3), round(8.0 * predicted_n + 0.1, 3)
    return {
        "prompt_n": prompt_n,
        "prompt_ms": prompt_ms,
        "prompt_per_second": round(1000 * prompt_n / prompt_ms, 3),
        "predicted_n": predicted_n,
        "predicted_ms": predicted_ms,
        "predicted_per_second": round(1000 * predicted_n / predicted_ms, 3),
    }


def logprob_entries(pieces: Sequence[str], top: int, start: int = 0) -> List[Dict[str, Any]]:
    """``logprobs.content`` entries for content pieces (one token per piece): the
    token, a made-up logprob of ``-0.01 * (1 + i % 7)``, its UTF-8 ``bytes``, and
    ``top`` alternatives (the token itself first, then ``"<alt1>"``... each one less
    likely)."""
    entries = []
    for index, piece in enumerate(pieces, start):
        logprob = round(-0.01 * (1 + index % 7), 4)
        alternatives = [piece] + [f"<alt{rank}>" for rank in range(1, top)]
        entries.append(
            {
                "token": piece,
                "logprob": logprob,
                "bytes": list(piece.encode()),
                "top_logprobs": [
                    {"token": token, "logprob": round(logprob - rank, 4), "bytes": list(token.encode())}
                    for rank, token in enumerate(alternatives[:top])
                ],
            }
        )
    return entries


# -- endpoints ---------------------------------------------------------------------


class OpenAIModels(Endpoint):
    """``GET /v1/models``: OpenAI's model list (checks the key like the chat endpoint)."""

    path = OPENAI_MODELS_PATH
    method = "GET"
    main = False

    def __init__(self, api_key: Optional[str] = None) -> None:
        self.api_key = api_key

    def respond(self, request: RecordedRequest, options: Mapping[str, Any]) -> Reply:
        check_bearer(request, self.api_key)
        models = [
            {"id": model, "object": "model", "created": _MODELS_CREATED, "owned_by": "llmproviders-emulator"}
            for model in OPENAI_MODELS
        ]
        return json_reply(200, {"object": "list", "data": models})


class OpenAIChat(Endpoint):
    """``POST /v1/chat/completions`` in every dialect: streamed (SSE chunks,
    ``[DONE]``) or not (one JSON completion).

    With ``api_key``, requests must carry ``Authorization: Bearer <api_key>``.
    ``dialect`` holds the emulator-wide dialect options; a model name
    ``"name@spec"`` adds the options of ``spec``, and a plan's options come last.
    """

    path = YLOKH_PATH
    content_type = "text/event-stream; charset=utf-8"
    malformed = b"data: {not json}\n\n"

    def __init__(self, api_key: Optional[str] = None, dialect: Optional[Mapping[str, Any]] = None) -> None:
        self.api_key = api_key
        self.dialect: Dict[str, Any] = dict(dialect or {})

    def error(self, status: int, message: str) -> Fixed:
        return json_reply(status, {"error": {"message": message, "type": "invalid_request_error", "code": None}})

    def accept(self, request: RecordedRequest) -> ChatRequest:
        """Validate ``request``; the :class:`ChatRequest` with its dialect options
        (emulator-wide, then from the model name)."""
        check_bearer(request, self.api_key)
        chat = _Checker(self).request(self.json_body(request))
        try:
            _, from_model = split_model(chat.model)
        except ValueError as exc:
            self.reject(400, f"model {chat.model!r:.80}: {exc}")
        chat.dialect = {**self.dialect, **from_model}
        return chat

    def respond(self, request: RecordedRequest, options: Mapping[str, Any]) -> Reply:
        chat = self.accept(request)
        fault = self.asked(request, chat.question)
        if fault is not None:
            return fault
        options = {**chat.dialect, **options}
        if options.get("require_reasoning_content"):
            self._require_reasoning_content(chat)
        if "context_overflow" in options:
            return self._context_overflow(chat, options)
        answer = _answer(chat, options)
        context = {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "created": int(time.time()),
            "model": chat.model,
        }
        if chat.stream:
            return _StreamWriter(chat, answer, options, context).reply()
        return self._completion(chat, answer, options, context)

    def _require_reasoning_content(self, chat: ChatRequest) -> None:
        for index, message in enumerate(chat.messages):
            if message.get("role") == "assistant" and message.get("tool_calls") and "reasoning_content" not in message:
                self.reject(
                    400,
                    f"Missing `reasoning_content` field in the assistant message at message index {index}: "
                    "in thinking mode, send it back with the assistant messages that made tool calls",
                )

    def _context_overflow(self, chat: ChatRequest, options: Mapping[str, Any]) -> Fixed:
        n_ctx = options.get("context_window", DEFAULT_CONTEXT_WINDOW)
        n_prompt = max(prompt_tokens_for(chat.messages), n_ctx + 1)
        status = options.get("status", 400)
        if options["context_overflow"] == "llama.cpp":
            error: Dict[str, Any] = {
                "code": status,
                "message": "the request exceeds the available context size, try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": n_prompt,
                "n_ctx": n_ctx,
            }
        else:
            error = {
                "message": f"This model's maximum context length is {n_ctx} tokens. However, your messages "
                f"resulted in {n_prompt} tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        return json_reply(status, {"error": error})

    def _completion(self, chat: ChatRequest, answer: Answer, options: Mapping[str, Any], context: Dict[str, Any]) -> Fixed:
        message: Dict[str, Any] = {"role": "assistant", "content": answer.content}
        if answer.reasoning in ("reasoning_content", "reasoning"):
            message[answer.reasoning] = answer.thinking
        if answer.refusal is not None:
            message["refusal"] = answer.refusal
        if answer.calls:
            as_object = options.get("tool_call_style") == "object_arguments"
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_object if as_object else call.arguments},
                }
                for call in answer.calls
            ]
        choices = []
        for index in range(options.get("choices", chat.n)):
            choice: Dict[str, Any] = {"index": index, "message": message, "finish_reason": answer.finish_reason}
            if chat.logprobs:
                choice["logprobs"] = {"content": logprob_entries(answer.content_pieces, chat.top_logprobs)}
            choices.append(choice)
        completion: Dict[str, Any] = {
            "id": context["id"],
            "object": "chat.completion",
            "created": context["created"],
            "model": context["model"],
            "choices": choices,
        }
        usage = usage_for(chat, answer.completion_tokens())
        if options.get("usage", "request") != "none":
            completion["usage"] = usage
        if options.get("timings"):
            completion["timings"] = _timings(usage)
        return json_reply(200, completion)


class _StreamWriter:
    """Writes one :class:`Answer` as SSE chunks in the dialect's shape."""

    def __init__(self, chat: ChatRequest, answer: Answer, options: Mapping[str, Any], context: Dict[str, Any]) -> None:
        self.chat = chat
        self.answer = answer
        self.options = options
        self.context = context
        self.usage_mode = options.get("usage", "request")
        self.choices = options.get("choices", chat.n)
        self.final_usage = usage_for(chat, answer.completion_tokens())

    def reply(self) -> Stream:
        deltas = list(self._deltas())
        frames: List[Frame] = []
        if not deltas or deltas[0][0] == "content":
            for index in range(self.choices):
                frames.append(Frame("open", self._chunk([self._choice(index, {"role": "assistant", "content": ""})], 0)))
        else:
            kind, first, piece = deltas[0]
            role = {"role": "assistant", "content": "" if kind == "reasoning" and self.answer.reasoning == "reasoning" else None}
            deltas[0] = (kind, {**role, **first}, piece)
        spent = _Spent()
        content_index = 0
        for kind, delta, piece in deltas:
            if self.usage_mode == "every":
                spent.add(kind, delta)
            for index in range(self.choices):
                choice = self._choice(index, delta)
                if piece is not None and self.chat.logprobs:
                    choice["logprobs"] = {"content": logprob_entries([piece], self.chat.top_logprobs, content_index)}
                data = self._chunk([choice], min(spent.tokens, self.final_usage["completion_tokens"]))
                if kind == "content" and self.options.get("invalid_utf8") and content_index == 0:
                    data = data.replace(b"\\u0000", b"\xff", 1)
                frames.append(Frame("piece", data))
            if piece is not None:
                content_index += 1
        frames += self._trailer()
        self._faults(frames)
        return Stream(OpenAIChat.content_type, frames)

    def _deltas(self) -> Iterator[Tuple[str, Dict[str, Any], Optional[str]]]:
        """(kind, delta, the content piece for logprobs) in wire order, for one choice."""
        answer = self.answer
        if answer.reasoning in ("reasoning_content", "reasoning"):
            for piece in answer.thinking_pieces:
                extra = {"content": ""} if answer.reasoning == "reasoning" else {}
                yield "reasoning", {**extra, answer.reasoning: piece}, None
        for number, piece in enumerate(answer.content_pieces):
            marked = piece + "\0" if number == 0 and self.options.get("invalid_utf8") else piece
            yield "content", {"content": marked}, piece
        if answer.refusal is not None:
            for piece in pieces_for(answer.refusal) or [""]:
                yield "refusal", {"refusal": piece}, None
        for delta in _tool_deltas(answer.calls, self.options.get("tool_call_style", "standard")):
            yield "tool", delta, None

    def _choice(self, index: int, delta: Dict[str, Any], finish: Optional[str] = None) -> Dict[str, Any]:
        return {"index": index, "delta": delta, "finish_reason": finish}

    def _chunk(self, choices: List[Dict[str, Any]], tokens: int, *, usage: Any = None, timings: bool = False) -> bytes:
        chunk: Dict[str, Any] = {
            "id": self.context["id"],
            "object": "chat.completion.chunk",
            "created": self.context["created"],
            "model": self.context["model"],
            "choices": choices,
        }
        if self.usage_mode == "request" and self.chat.include_usage:
            chunk["usage"] = usage
        elif self.usage_mode == "every":
            chunk["usage"] = usage_for(self.chat, tokens)
        elif usage is not None:
            chunk["usage"] = usage
        if timings:
            chunk["timings"] = _timings(self.final_usage)
        return f"data: {dumps(chunk)}\n\n".encode()

    def _trailer(self) -> List[Frame]:
        total = self.final_usage["completion_tokens"]
        usage_chunk = self.usage_mode == "final" or (self.usage_mode == "request" and self.chat.include_usage)
        timings = bool(self.options.get("timings"))
        frames = []
        for index in range(self.choices):
            last = index == self.choices - 1 and not usage_chunk
            finish = self._choice(index, {}, self.answer.finish_reason)
            frames.append(Frame("trailer", self._chunk([finish], total, timings=timings and last)))
        if usage_chunk:
            frames.append(Frame("trailer", self._chunk([], total, usage=self.final_usage, timings=timings)))
        ending = DONE_ENDINGS[self.options.get("done_ending", "blank_line")]
        frames.append(Frame("trailer", b"data: [DONE]" + ending))
        return frames

    def _faults(self, frames: List[Frame]) -> None:
        """The stream-level faults: an error after the first piece, a malformed frame,
        a UTF-16 BOM line, a leading UTF-8 BOM."""
        first = next((i for i, frame in enumerate(frames) if frame.kind == "piece"), None)
        options = self.options
        if first is not None and ("stream_error" in options or options.get("stream_error_event")):
            error = options.get("stream_error", _STANDARD_STREAM_ERROR)
            error = {"message": error, "type": "server_error"} if isinstance(error, str) else error
            event = b"event: error\n" if options.get("stream_error_event") else b""
            frames[first + 1 :] = [Frame("error", event + f"data: {dumps({'error': error})}\n\n".encode())]
        if first is not None and options.get("utf16_bom_line"):
            ignored = self._chunk([self._choice(0, {"content": "✗ a line with a UTF-16 BOM is an unknown field"})], 0)
            frames.insert(first + 1, Frame("noise", b"\xfe\xff" + ignored))
        if first is not None and options.get("malformed"):
            frames.insert(first + 1, Frame("malformed", OpenAIChat.malformed))
        if frames and options.get("leading_bom"):
            frames[0] = Frame(frames[0].kind, b"\xef\xbb\xbf" + frames[0].data)


class _Spent:
    """Running completion tokens of a stream: the words of each text sent so far,
    counted as the pieces go (a word cut across two pieces counts once)."""

    def __init__(self) -> None:
        self._in_word: Dict[Any, bool] = {}
        self.tokens = 0

    def add(self, kind: str, delta: Mapping[str, Any]) -> None:
        for key in ("content", "reasoning_content", "reasoning", "refusal"):
            if isinstance(delta.get(key), str) and (kind != "reasoning" or key != "content"):
                self._count("reasoning" if key == "reasoning_content" else key, delta[key].replace("\0", ""))
        for number, call in enumerate(delta.get("tool_calls") or ()):
            arguments = call.get("function", {}).get("arguments")
            if isinstance(arguments, str):
                self._count(("tool", call.get("index"), call.get("id"), number), arguments)

    def _count(self, key: Any, text: str) -> None:
        if not text:
            return
        words = len(text.split())
        if words and self._in_word.get(key, False) and not text[0].isspace():
            words -= 1  # the first word continues the last one
        self.tokens += words
        self._in_word[key] = not text[-1].isspace()


def _tool_deltas(calls: Sequence[Call], style: str) -> List[Dict[str, Any]]:
    """The tool-call deltas of ``calls`` in one of :data:`TOOL_CALL_STYLES`."""
    if style in ("whole", "object_arguments"):
        return [
            {
                "tool_calls": [
                    {
                        "index": position,
                        "id": call.id,
                        "type": "function",
                        "function": {
                            "name": call.name,
                            "arguments": call.arguments_object if style == "object_arguments" else call.arguments,
                        },
                    }
                ]
            }
            for position, call in enumerate(calls)
        ]
    per_call: List[List[Dict[str, Any]]] = []
    for position, call in enumerate(calls):
        index = {"no_index": None, "reused_index": 0, "index_from_1": position + 1}.get(style, position)
        numbered = (lambda fragment: fragment) if index is None else (lambda fragment: {"index": index, **fragment})
        pieces = pieces_for(call.arguments, min(3, len(call.arguments))) or [""]
        if style == "repeated":
            fragments = [
                {
                    "tool_calls": [numbered({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": piece}})],
                    "function_call": {"name": call.name, "arguments": piece},
                }
                for piece in pieces
            ]
        else:
            head = numbered({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}})
            fragments = [{"tool_calls": [head]}]
            fragments += [{"tool_calls": [numbered({"function": {"arguments": piece}})]} for piece in pieces]
        per_call.append(fragments)
    if style != "interleaved":
        return [fragment for fragments in per_call for fragment in fragments]
    interleaved = []
    for step in range(max((len(fragments) for fragments in per_call), default=0)):
        interleaved += [fragments[step] for fragments in per_call if step < len(fragments)]
    return interleaved
