"""GPROChat: a SHA-256-signed prompt, the reply streamed back as plain UTF-8 text.

Request: ``POST /api/generate`` with the conversation flattened into one prompt
(:func:`format_prompt`), the time in milliseconds and ``sign``, the SHA-256 of
``"{time}:{prompt}:{secret}"``; the JSON body goes as ``text/plain`` (the site checks
it does). Reply: raw UTF-8 text in arbitrary pieces; every piece is text. The protocol
has no end marker.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Dict, List

from .._http import Call
from .._messages import format_prompt
from .._provider import Provider, Request, register_provider
from .._reply import Reply
from ._browser import CHROME_129_LINUX, browser_headers

SECRET = "2BC120D4-BB36-1B60-26DE-DB630472A3D8"


@register_provider
class GPROChat(Provider):
    """gprochat.com (offline). Any model name is accepted; it is never sent."""

    url = "https://gprochat.com"
    api_endpoint = "https://gprochat.com/api/generate"
    working = False
    supports_stream = True
    supports_message_history = True
    default_model = "gemini-1.5-pro"
    framing = "text"
    text_only = True

    @staticmethod
    def generate_signature(timestamp: int, message: str) -> str:
        """Hex SHA-256 of ``"{timestamp}:{message}:{secret}"``, as the site signs requests."""
        return hashlib.sha256(f"{timestamp}:{message}:{SECRET}".encode()).hexdigest()

    @classmethod
    def build_request(
        cls, call: Call, model: str, messages: List[Dict[str, Any]], options: Dict[str, Any], *, stream: bool
    ) -> Request:
        prompt = format_prompt(messages)
        timestamp = int(time.time() * 1000)
        body = {
            "messages": [{"role": "user", "parts": [{"text": prompt}]}],
            "time": timestamp,
            "pass": None,
            "sign": cls.generate_signature(timestamp, prompt),
        }
        headers = browser_headers("https://gprochat.com", user_agent=CHROME_129_LINUX, content_type="text/plain;charset=UTF-8")
        return Request(call.url(cls.api_endpoint), headers, data=json.dumps(body).encode())

    @classmethod
    def parse(cls, frame: str, reply: Reply) -> str:
        return frame  # every piece of the body is text
