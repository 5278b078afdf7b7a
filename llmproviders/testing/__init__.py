"""An embedded emulator of the four (now offline) upstream services.

:class:`Emulator` is a real HTTP/1.1 server on loopback (standard library only)
that serves all four protocols on their real paths, on one port, so one base URL
serves every provider:

- FlowGpt: ``POST /v3/chat-anonymous`` (signed headers; NDJSON events)
- GPROChat: ``POST /api/generate`` (signed body; raw UTF-8 text)
- Chatgpt4Online: ``POST /wp-json/mwai/v1/start_session``, then
  ``POST /wp-json/mwai-ui/v1/chats/submit`` (nonce; SSE ``live``/``end`` events)
- Ylokh and any OpenAI client: ``POST /v1/chat/completions`` (OpenAI chat
  completions, streamed or not; ``stream_options.include_usage`` adds a usage chunk)
  and ``GET /v1/models`` (OpenAI's model list); ``Emulator(api_key=...)`` makes both
  require ``Authorization: Bearer <api_key>``, as OpenAI does

It checks requests like the real services did (bad signature: 401, bad body:
400, unknown nonce: 403, unknown path: 404, wrong method: 405), and as a careful
server reads them (a body over ``max_body_size``, 16 MiB: 413; an invalid
``Content-Length``, a malformed chunked body, JSON nested too deeply to parse, a
malformed request line or header: 400), and answers with
:func:`reply_for` the conversation, streamed in the pieces :func:`pieces_for`
gives, one piece per HTTP chunk (``framing="chunked"``) or per write on a
close-delimited body (``framing="close"``).

Every request is recorded (:attr:`Emulator.requests`, :class:`RecordedRequest`;
its ``headers`` is a :class:`Headers`, a case-insensitive mapping with lower-cased
names). :meth:`Emulator.plan` scripts the next requests (:class:`Plan`):

- ``framing="chunked"|"close"``, ``pace=seconds`` between pieces
- ``reply=str``, ``pieces=[str, ...]``, ``long_reply=n_characters``
- ``step=True``: send the first piece, then one more per :meth:`Plan.advance`
  (cut with outcome ``"fault-disconnect"`` after ``step_timeout``, 10 s)
- ``status=``, ``body=`` (str, bytes or JSON dict/list), ``content_type=``:
  answer that instead of the protocol; ``headers={...}``: extra response headers
- ``html_error=status``: a generic HTML error page; ``cloudflare=True``: a
  Cloudflare challenge (403, ``cf-mitigated: challenge``, "Just a moment...")
- ``retry_after=seconds``: 429 (or ``status``) with ``Retry-After``
- ``delay_headers=seconds`` before the status line
- ``disconnect_after_bytes=n`` of body payload, ``disconnect_after_events=n`` pieces:
  cut the connection there (no terminating chunk; on a close-delimited body a
  cut looks like the end of the body, only the missing trailer gives it away)
- ``malformed=True``: one malformed frame after the first piece
- ``split_utf8=True``: split multi-byte characters across chunks/writes
- ``omit_trailer=True``: no done line / end event / finish chunk and ``[DONE]``
- ``end_mismatch=str`` (Chatgpt4Online), ``stream_error={...}`` (Ylokh),
  ``start_session_html=True`` (Chatgpt4Online's start_session answers 403 HTML)

OpenAI-compatible dialects
--------------------------

``POST /v1/chat/completions`` accepts what modern clients send: content as a list
of parts (``text``, ``image_url`` with a base64 data URL or an http(s) URL,
``input_audio``, ``file``), roles ``system``, ``developer``, ``user``,
``assistant`` (with ``tool_calls`` and ``content: null``, ``reasoning_content``,
``refusal``), ``tool`` (with the ``tool_call_id`` of an earlier call) and the legacy
``function``; the fields ``tools``, ``tool_choice``, ``parallel_tool_calls``,
``reasoning_effort``, ``logprobs``, ``top_logprobs``, ``n``, ``response_format``,
``stop``, ``max_tokens``, ``seed``... and any server-specific field
(``chat_template_kwargs``, ``top_k``...). It answers 400, in OpenAI's error shape,
for what real servers refuse (no messages, a bad role, a tool message without an
earlier call of that id, ``top_logprobs`` without ``logprobs``...).

Without options it answers as OpenAI does, and also:

- ``logprobs: true`` adds ``choices[i].logprobs.content`` (one entry per content
  piece, with ``top_logprobs`` alternatives); ``n: k`` sends k choices.
- **Tool loop.** With ``tools``, when the last message is from the user, the reply
  is a call to the first tool (or the one ``tool_choice`` names; never with
  ``"none"``; on every turn with ``"required"``), ``content: null`` and
  ``finish_reason: "tool_calls"``. Its arguments give each *required* property of
  the tool's JSON schema a value (:func:`arguments_for`: the question for a
  string, 1 for a number, true, [], the first ``enum`` value...). When the
  conversation ends with ``tool`` messages, the reply quotes their results
  (``TOOL_REPLY_FORMAT``; :func:`reply_for` gives it).

Dialect options say how a server deviates. They come from three places, later
ones winning key by key: ``Emulator(dialect=...)`` (a preset name, a string of
presets and ``option=value`` items, or a mapping), the model name (``"name@spec"``,
e.g. ``model="qwen3@llama.cpp"`` or ``model="m@reasoning=think,usage=every"``: for
clients that cannot call :meth:`Emulator.plan`, such as another process or the
``python -m llmproviders emulator`` server), and :meth:`Emulator.plan`, whose
keywords they are too (a plan with any of them and no ``path`` applies to
``/v1/chat/completions`` only):

- ``reasoning="reasoning_content"|"reasoning"|"think"``: reasoning first, as
  ``delta.reasoning_content`` (llama.cpp, DeepSeek, LM Studio), ``delta.reasoning``
  with an empty ``content`` beside it (vLLM, Ollama), or ``<think>…</think>`` at the
  start of ``content`` with both tags split across chunks (``"<th"``, ``"ink>"``);
  non-stream on ``message`` (or in ``content``). ``thinking=str`` is its text
  (default ``THINKING_FORMAT``, :func:`thinking_for`); ``unfinished_reasoning=True``
  ends the reply inside the reasoning (no ``</think>``, no answer, ``"length"``).
- ``tool_calls=[{"name": ..., "arguments": {...} or "json", "id": ...}]``: these
  calls instead of the tool loop (``reply=`` adds text before them).
  ``tool_call_style=``: ``"standard"``; ``"no_index"`` (Gemini); ``"reused_index"``
  (index 0 for every call, each with a new id: vLLM, sglang); ``"index_from_1"``;
  ``"whole"`` (each call in one chunk: Ollama); ``"interleaved"`` (the calls'
  fragments alternate); ``"object_arguments"`` (arguments as a JSON object, in one
  chunk; non-stream too); ``"repeated"`` (id and name on every fragment beside a
  legacy ``function_call`` delta: llama-cpp-python).
- ``finish_reason=str``: instead of ``"stop"``/``"tool_calls"``/``"length"``
  (``"stop"`` after tool calls, as Gemini sends).
- ``usage="request"`` (default: a usage-only final chunk with ``choices: []`` when
  ``stream_options.include_usage``), ``"final"`` (always, without ``usage: null``
  on the other chunks: llama.cpp), ``"every"`` (running totals on every chunk),
  ``"none"``; ``timings=True`` adds llama.cpp's ``timings`` to the last chunk
  before ``[DONE]`` (and to the completion).
- ``refusal=str`` (or ``True`` for ``REFUSAL_TEXT``): ``delta.refusal`` fragments,
  ``message.refusal``, ``content: null``.
- ``choices=k``: k choices (index 0 to k-1) whatever the request's ``n``.
- ``context_overflow="llama.cpp"|"openai"``: the context-overflow error
  (``exceed_context_size_error`` with ``n_prompt_tokens`` and ``n_ctx``, or
  ``context_length_exceeded``) with HTTP ``status=`` (default 400; llama.cpp forks
  send 500); ``context_window=n`` is the ``n_ctx`` it reports (default 4096).
- ``require_reasoning_content=True``: 400 when an assistant message with
  ``tool_calls`` comes back without its ``reasoning_content`` (DeepSeek).
- ``stream_error={...}`` or a message: ``data: {"error": ...}`` after the first
  piece; ``stream_error_event=True`` sends it with an ``event: error`` line.
- SSE edge cases: ``invalid_utf8=True`` (a 0xFF byte after the first content piece,
  inside its JSON string: a standard client reads U+FFFD there),
  ``utf16_bom_line=True`` (a line starting with a UTF-16 BOM after the first
  piece; an unknown field, so nothing to dispatch), ``leading_bom=True`` (a UTF-8
  BOM before the first event), ``done_ending="newline"|"none"`` (the body ends
  right after ``data: [DONE]`` with one line ending, or none).

``DIALECTS`` names presets: ``"openai"``, ``"llama.cpp"``, ``"deepseek"``,
``"vllm"``, ``"ollama"``, ``"lmstudio"``, ``"gemini"``, ``"llama-cpp-python"``.

Flaky batches
-------------

``Emulator(flaky=Flaky(rate=0.3, kinds=("500", "429", "drop"), retry_after=0.05,
seed=1))`` fails a deterministic share of chat requests (all four protocols)
before their first delta: a question is flaky or not by a seeded hash, a flaky one
fails its first k attempts (1 to ``max_failures``), and one containing ``"FAIL"``
(``marker``) fails every time (``permanent``, default ``"500"``). :meth:`Flaky.failures`
and :meth:`Flaky.fault` predict it; :meth:`Emulator.requests_for` lists the
requests each question cost; each :class:`RecordedRequest` has its ``question``,
``attempt`` and ``fault``.

Example usage::

    import requests
    from llmproviders.testing import Emulator, reply_for

    messages = [{"role": "user", "content": "Привет!"}]
    with Emulator() as emu:
        plan = emu.plan(path="/v1/chat/completions", step=True)
        response = requests.post(
            emu.base_url + "/v1/chat/completions",
            json={"model": "gpt-3.5-turbo", "messages": messages, "stream": True},
            stream=True,
            timeout=5,
        )
        ...  # read the first delta; the server holds the next one until:
        plan.advance(100)
        assert plan.wait() == "complete"
        assert emu.requests[0].headers["content-type"] == "application/json"
    # reply_for(messages) == "Вы спросили: «Привет!». Here is the answer ✓ 🚀"

``serve()`` runs an emulator in the foreground until Ctrl+C. The pytest fixture
``llm_emulator`` lives in :mod:`llmproviders.testing.pytest_plugin`.
"""

from ._emulator import FRAMING_HEADER, MAX_BODY_SIZE, Emulator, serve
from ._flaky import FAULTS, Flaky
from ._model import FRAMINGS, OUTCOMES, Headers, Plan, RecordedRequest
from ._openai import DIALECTS, REFUSAL_TEXT, THINKING_FORMAT, arguments_for, thinking_for
from ._protocols import (
    CHATGPT4ONLINE_SESSION_PATH,
    CHATGPT4ONLINE_SUBMIT_PATH,
    FLOWGPT_MODELS,
    FLOWGPT_PATH,
    GPROCHAT_PATH,
    GPROCHAT_SECRET,
    OPENAI_MODELS,
    OPENAI_MODELS_PATH,
    REPLY_FORMAT,
    TOOL_REPLY_FORMAT,
    YLOKH_PATH,
    content_text,
    pieces_for,
    question_for,
    question_from_prompt,
    reply_for,
)

__all__ = [
    "Emulator",
    "Plan",
    "RecordedRequest",
    "Headers",
    "Flaky",
    "FAULTS",
    "serve",
    "reply_for",
    "pieces_for",
    "question_for",
    "question_from_prompt",
    "content_text",
    "thinking_for",
    "arguments_for",
    "REPLY_FORMAT",
    "TOOL_REPLY_FORMAT",
    "THINKING_FORMAT",
    "REFUSAL_TEXT",
    "DIALECTS",
    "GPROCHAT_SECRET",
    "FLOWGPT_MODELS",
    "FLOWGPT_PATH",
    "GPROCHAT_PATH",
    "CHATGPT4ONLINE_SESSION_PATH",
    "CHATGPT4ONLINE_SUBMIT_PATH",
    "YLOKH_PATH",
    "OPENAI_MODELS_PATH",
    "OPENAI_MODELS",
    "FRAMINGS",
    "FRAMING_HEADER",
    "OUTCOMES",
    "MAX_BODY_SIZE",
]
