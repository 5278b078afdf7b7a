"""FlowGpt: signed anonymous chat, replies as newline-delimited JSON events."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Dict, Iterator, List

from .._exceptions import ProtocolError
from .._framing import iter_ndjson
from .._http import Call, excerpt, random_hex, random_string
from .._provider import Provider, register_provider
from ._browser import FIREFOX_122_LINUX, browser_headers

API_URL = "https://prod-backend-k8s.flowgpt.com/v3/chat-anonymous"
GREETING = {"role": "assistant", "content": "Hello, how can I help you today?"}
DEFAULT_SYSTEM = "You are helpful assistant. Follow the user's instructions carefully."


@register_provider
class FlowGpt(Provider):
    """flowgpt.com's anonymous chat (offline). Requests are signed with an MD5 of
    timestamp, nonce and authorization; the reply streams as ``{"event": "text"}`` lines."""

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
    options = frozenset({"temperature"})

    @classmethod  # narrows **options to this provider's own (checked by the base first)
    def _generate(  # type: ignore[override]
        cls, call: Call, model: str, messages: List[Dict[str, Any]], *, stream: bool, temperature: float = 0.7
    ) -> Iterator[str]:
        timestamp = str(int(time.time()))
        nonce = random_hex()
        authorization = "Bearer null"
        signature = hashlib.md5(f"{timestamp}-{nonce}-{authorization}".encode()).hexdigest()
        headers = browser_headers("https://flowgpt.com", user_agent=FIREFOX_122_LINUX)
        headers.update(
            {
                "Authorization": authorization,
                "x-flow-device-id": "f-" + random_string(19),
                "x-nonce": nonce,
                "x-signature": signature,
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
            "temperature": temperature,
            "promptId": f"model-{model}",
            "documentIds": [],
            "chatFileDocumentIds": [],
            "generateImage": False,
            "generateAudio": False,
        }
        with call.open(call.url(API_URL), headers=headers, json_body=body) as response:
            for event in iter_ndjson(call.body(response), provider=cls.__name__, max_frame=call.max_frame, reading=call.reading()):
                if not isinstance(event, dict) or event.get("event") != "text":
                    continue
                data = event.get("data")
                if not isinstance(data, str):
                    raise ProtocolError(
                        f"{cls.__name__}: a text event without string data: {excerpt(str(event))!r}",
                        provider=cls.__name__,
                        frame=excerpt(str(event)),
                    )
                if data:
                    yield data
