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
400, unknown nonce: 403, unknown path: 404, wrong method: 405) and answers with
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

from ._emulator import FRAMING_HEADER, Emulator, serve
from ._model import FRAMINGS, OUTCOMES, Headers, Plan, RecordedRequest
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
    YLOKH_PATH,
    pieces_for,
    question_from_prompt,
    reply_for,
)

__all__ = [
    "Emulator",
    "Plan",
    "RecordedRequest",
    "Headers",
    "serve",
    "reply_for",
    "pieces_for",
    "question_from_prompt",
    "REPLY_FORMAT",
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
]
