"""FlowGpt: signed anonymous chat, replies as newline-delimited JSON events.

Request: ``POST /v3/chat-anonymous`` with headers signed per request (``x-signature`` is
the MD5 of ``"{x-timestamp}-{x-nonce}-{authorization}"``) and a body carrying the last
message as ``question`` and the earlier ones as ``history``. Reply: one JSON object per
line; the text is the ``data`` of every ``{"event": "text"}`` line, other lines are
ignored. The protocol has no end marker.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Dict, List

from .._exceptions import ProtocolError
from .._framing import preview
from .._http import Call, random_hex, random_string
from .._options import Number
from .._provider import Provider, Request, register_provider
from .._reply import Reply
from ._browser import FIREFOX_122_LINUX, browser_headers

API_URL = "https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous"
GREETING = {"role": "assistant", "content": "Hello, how can I help you today?"}
DEFAULT_SYSTEM = "You are helpful assistant. Follow the user's instructions carefully."


@register_provider
class FlowGpt(Provider):
    """flowgpt.com's anonymous chat (offline). Option: ``temperature`` (0 to 2, default 0.7)."""

    url = "https://flowgpt.com/chat"
    working = False
    supports_message_history = True
    supports_system_message = True
    default_model = "gpt-3.5-turbo"
    models = [
        "gpt-3.5-turbo",
        "gpt-3.5-long",
        "gpt-4-turbo",
        "google-gemini",
        "claude-instant",
        "claude-v1",
        "claude-v2",
        "llama2-13b",
        "mythalion-13b",
        "pygmalion-13b",
        "chronos-hermes-13b",
        "Mixtral-8x7B",
        "Dolphin-2.6-8x7B",
    ]
    model_aliases = {"gemini": "google-gemini", "gemini-pro": "google-gemini"}
    options = {"temperature": Number(0, 2)}
    framing = "ndjson"
    text_only = True

    @classmethod
    def build_request(
        cls, call: Call, model: str, messages: List[Dict[str, Any]], options: Dict[str, Any], *, stream: bool
    ) -> Request:
        timestamp = str(int(time.time()))
        nonce = random_hex()
        authorization = "Bearer null"
        headers = browser_headers("https://flowgpt.com", user_agent=FIREFOX_122_LINUX)
        headers.update(
            {
                "Authorization": authorization,
                "x-flow-device-id": "f-" + random_string(19),
                "x-nonce": nonce,
                "x-signature": hashlib.md5(f"{timestamp}-{nonce}-{authorization}".encode()).hexdigest(),
                "x-timestamp": timestamp,
            }
        )
        system = "\n".join(m["content"] for m in messages if m["role"] == "system")
        body = {
            "model": model,
            "nsfw": False,
            "question": messages[-1]["content"],
            "history": [GREETING] + [m for m in messages[:-1] if m["role"] != "system"],
            "system": system or DEFAULT_SYSTEM,
            "temperature": options.get("temperature", 0.7),
            "promptId": f"model-{model}",
            "documentIds": [],
            "chatFileDocumentIds": [],
            "generateImage": False,
            "generateAudio": False,
        }
        return Request(call.url(API_URL), headers, json=body)

    @classmethod
    def parse(cls, frame: Any, reply: Reply) -> Any:
        if type(frame) is not dict or frame.get("event") != "text":
            return None  # other events (status, done, ...) say nothing about the text
        data = frame.get("data")
        if type(data) is not str:
            shown = preview(frame, reply.redact)
            raise ProtocolError(
                f"{cls.__name__}: a text event without string data: {shown!r}", provider=cls.__name__, frame=shown
            )
        return data or None
