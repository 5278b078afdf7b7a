"""GPROChat: a SHA-256-signed prompt, the reply streamed back as plain UTF-8 text."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Dict, Iterator, List

from .._framing import iter_text
from .._http import Call
from .._messages import format_prompt
from .._provider import Provider, register_provider
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

    @staticmethod
    def generate_signature(timestamp: int, message: str) -> str:
        """Hex SHA-256 of ``"{timestamp}:{message}:{secret}"``, as the site signs requests."""
        return hashlib.sha256(f"{timestamp}:{message}:{SECRET}".encode()).hexdigest()

    @classmethod  # narrows **options to this provider's own (checked by the base first)
    def _generate(cls, call: Call, model: str, messages: List[Dict[str, Any]], *, stream: bool) -> Iterator[str]:  # type: ignore[override]
        prompt = format_prompt(messages)
        timestamp = int(time.time() * 1000)
        body = {
            "messages": [{"role": "user", "parts": [{"text": prompt}]}],
            "time": timestamp,
            "pass": None,
            "sign": cls.generate_signature(timestamp, prompt),
        }
        # The site sends its JSON as text/plain, and checks that it does.
        headers = browser_headers(
            "https://gprochat.com", user_agent=CHROME_129_LINUX, content_type="text/plain;charset=UTF-8"
        )
        data = json.dumps(body).encode()
        with call.open(call.url(cls.api_endpoint), headers=headers, data=data) as response:
            yield from iter_text(call.body(response), provider=cls.__name__, reading=call.reading())
