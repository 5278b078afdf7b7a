"""Ylokh: an OpenAI-compatible chat-completions API, preconfigured with the site's defaults."""

from __future__ import annotations

from typing import List, Optional

from .._http import TimeoutArg
from .._options import Flag
from .._provider import register_provider
from .openai_compatible import OpenAICompatible

API_URL = "https://chatapi.ylokh.xyz/v1/chat/completions"


@register_provider
class Ylokh(OpenAICompatible):
    """chat.ylokh.xyz (offline), an OpenAI-compatible chat-completions API.

    Any OpenAI-compatible server can stand in for it: pass ``base_url`` (its root, or
    its ``/v1`` root). The request carries the site's sampling defaults
    (``temperature=1``, ``top_p=1``, no penalties, ``allow_fallback=true``); options
    given replace them. No key is sent unless ``api_key=`` is given (the
    ``LLMPROVIDERS_API_KEY`` variable is not read: it would go to the real site).
    """

    url = "https://chat.ylokh.xyz"
    working = False
    supports_message_history = True
    supports_system_message = False
    supports_gpt_35_turbo = True
    default_model = "gpt-3.5-turbo"
    options = {**OpenAICompatible.options, "allow_fallback": Flag()}
    api_root = API_URL[: -len("/chat/completions")]
    api_key_env = None
    default_headers = {"Origin": "https://chat.ylokh.xyz", "Referer": "https://chat.ylokh.xyz/"}
    body_defaults = {"temperature": 1, "presence_penalty": 0, "top_p": 1, "frequency_penalty": 0, "allow_fallback": True}

    @classmethod
    def get_models(
        cls, base_url: Optional[str] = None, api_key: Optional[str] = None, timeout: TimeoutArg = None
    ) -> List[str]:
        """Ylokh published no model list: ``[]`` (any name). With ``base_url``, the
        model list of the server there."""
        if base_url is None:
            return list(cls.models)
        return super().get_models(base_url, api_key, timeout)
