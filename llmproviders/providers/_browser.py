"""Browser-like request headers: the upstreams were web sites' back ends and expected them."""

from __future__ import annotations

from typing import Dict

FIREFOX_122_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:122.0) Gecko/20100101 Firefox/122.0"
CHROME_129_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36"
)
CHROME_126 = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


def browser_headers(origin: str, *, user_agent: str, accept: str = "*/*", content_type: str = "application/json") -> Dict[str, str]:
    """The headers a browser on ``origin`` sends with a ``fetch`` POST."""
    return {
        "User-Agent": user_agent,
        "Accept": accept,
        "Accept-Language": "en-US,en;q=0.5",
        # Streamed replies must not sit behind a compressor: ask for the body as is.
        "Accept-Encoding": "identity",
        "Content-Type": content_type,
        "Origin": origin,
        "Referer": origin + "/",
    }
