"""Live display of a reply: Markdown that grows in a Jupyter cell, text deltas elsewhere.

:meth:`Stream.display` reads a stream to its end while showing it. In a Jupyter
kernel it renders the reply as one Markdown display, updated at most every
:data:`UPDATE_INTERVAL` seconds (so a fast stream does not flood the notebook) and
soon after the last piece that arrived (so a pause never hides text already
received): the model's reasoning in a collapsed ``<details>`` block, the answer, a
refusal, tool calls as a JSON code block, and at the end a footer (provider, model,
tokens if the server reported them, time to the first token, total time). Anywhere
else (a script, a terminal IPython) it prints the text deltas to stdout as they
arrive. This module never imports IPython: it uses it only when it is already
running.

In a kernel the stream is read by a helper thread and the display is updated from
the cell's own thread, which therefore always gets the kernel's interrupt. An
interrupt (or Ctrl-C) during :func:`display` aborts the read, so the connection is
closed at once; the partial reply stays on screen, marked "(interrupted)", and in
``stream.text``; and the ``KeyboardInterrupt`` still ends the cell.

A stream that :func:`display` showed is not shown again as the result of the same
cell (``chat.send("Hi").display()`` as a cell's last line shows the reply once).
:func:`markdown` is ``Stream._repr_markdown_``: the reply of a finished stream, or a
note, which reads nothing, for one still open.
"""

from __future__ import annotations

import html
import json
import queue
import re
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .events import ReasoningDelta, RefusalDelta, TextDelta, ToolCall, ToolCallDelta, Usage

if TYPE_CHECKING:  # pragma: no cover
    from ._async import AsyncStream
    from ._stream import Stream

__all__ = ["display", "display_async", "markdown", "ipython_display", "render", "UPDATE_INTERVAL"]

#: The shortest time between two updates of a live display, in seconds.
UPDATE_INTERVAL = 0.1
#: How long an interrupted display waits for its reader thread to let go of the stream.
STOP_TIMEOUT = 5.0
_IDLE_WAIT = 0.5  # how often a display with nothing new wakes up anyway
_CONTENT = (TextDelta, ReasoningDelta, RefusalDelta, ToolCallDelta, ToolCall)
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.M)
_BACKTICKS = re.compile(r"`+")


class _Shown:
    """What :func:`display` measured about a stream it showed."""

    __slots__ = ("first", "total", "cell")

    def __init__(self, first: Optional[float], total: Optional[float], cell: Any) -> None:
        self.first = first
        self.total = total
        self.cell = cell


# Streams display() has shown: their timings, for the footer of a later rendering, and
# the cell they were shown in, so their echo as that cell's result is not shown again.
_shown: "weakref.WeakKeyDictionary[Any, _Shown]" = weakref.WeakKeyDictionary()


def _kernel_shell() -> Any:
    """The IPython shell of the Jupyter kernel this code runs in, or None (plain
    Python, or a terminal IPython, which cannot show Markdown)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001  (a half-imported or odd IPython: no rich display)
        return None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    return shell


def _ipython_display() -> Any:
    """``IPython.display`` (imported only here, and only once IPython runs)."""
    import IPython.display

    return IPython.display


class _Live:
    """One live display: the reply as far as it has arrived here, when it arrived, and
    the display handle to update. The reply is accumulated from the events this thread
    receives (the stream's own record is being written by the reader thread)."""

    def __init__(self, stream: "Stream", shell: Any) -> None:
        ipython = _ipython_display()
        self.stream = stream
        self.shell = shell
        self.Markdown: Any = ipython.Markdown
        self.started = time.monotonic()
        self.first: Optional[float] = None
        self.last_update = float("-inf")
        self.pending = False  # something arrived that the display does not show yet
        # what was received before display() was called, then what arrives
        self.text: List[str] = [stream.text]
        self.reasoning: List[str] = [stream.reasoning]
        self.refusal: List[str] = [stream.refusal or ""]
        self.calls: List[ToolCall] = stream.tool_calls
        self.arriving: Dict[int, List[Any]] = {}  # tool calls still arriving: index -> [id, name, arguments]
        self.usage: Optional[Usage] = stream.usage
        self.handle: Any = ipython.display(self.Markdown(self.render(live=True)), display_id=True)

    def event(self, event: Any) -> None:
        """One event arrived: note it, and update the display if it is time to."""
        kind = type(event)
        if self.first is None and kind in _CONTENT:
            self.first = time.monotonic() - self.started
        if kind is TextDelta:
            self.text.append(event.text)
        elif kind is ReasoningDelta:
            self.reasoning.append(event.text)
        elif kind is RefusalDelta:
            self.refusal.append(event.text)
        elif kind is ToolCallDelta:
            call = self.arriving.setdefault(event.index, [None, None, ""])
            call[0] = call[0] or event.id
            call[1] = call[1] or event.name
            call[2] += event.arguments
        elif kind is ToolCall:
            self.calls.append(event)
            self.arriving.pop(event.index, None)
        elif kind is Usage:
            self.usage = event
        else:
            return
        self.pending = True
        self.tick()

    def wait(self) -> float:
        """How long to wait for the next event before updating the display anyway."""
        if not self.pending:
            return _IDLE_WAIT
        return max(0.0, self.last_update + UPDATE_INTERVAL - time.monotonic())

    def tick(self) -> None:
        """Update the display if something new is not shown and the last update is old enough."""
        now = time.monotonic()
        if self.pending and now - self.last_update >= UPDATE_INTERVAL:
            self.last_update = now
            self.pending = False
            self.handle.update(self.Markdown(self.render(live=True)))

    def render(self, *, live: bool) -> str:
        calls = [_call_dict(call) for call in self.calls]
        calls += [{"id": i, "name": n, "arguments": a} for _, (i, n, a) in sorted(self.arriving.items())]
        return render(
            self.stream,
            live=live,
            text="".join(self.text),
            reasoning="".join(self.reasoning),
            refusal="".join(self.refusal),
            calls=calls,
            usage=self.usage,
        )

    def finish(self, note: Optional[str] = None) -> None:
        """The last update: the stream's own record (its reader is done), the note if
        any, and the footer."""
        total = time.monotonic() - self.started
        text = render(self.stream, note=note, first=self.first, total=total)
        self.handle.update(self.Markdown(text))
        _shown[self.stream] = _Shown(self.first, total, getattr(self.shell, "execution_count", None))


class _End:
    """The reader's last message: the stream ended, maybe with an error."""

    __slots__ = ("error",)

    def __init__(self, error: Optional[BaseException] = None) -> None:
        self.error = error


def _read(stream: "Stream", inbox: "queue.SimpleQueue[Any]") -> None:
    """The reader thread: every event of ``stream``, then its end."""
    try:
        for event in stream.events():
            inbox.put(event)
    except BaseException as exc:  # handed to the displaying thread, which raises it
        inbox.put(_End(exc))
    else:
        inbox.put(_End())


def display(stream: "Stream") -> "Stream":
    """Read ``stream`` to its end while showing it (see the module docstring); return
    it, consumed, so ``text``, ``usage`` and ``message`` can be read."""
    shell = _kernel_shell()
    if shell is None:
        return _print(stream)
    live = _Live(stream, shell)
    inbox: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    reader = threading.Thread(target=_read, args=(stream, inbox), name="llmproviders-display", daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = inbox.get(timeout=live.wait())
            except queue.Empty:
                live.tick()  # text that arrived just after the last update, then a pause
                continue
            if type(item) is _End:
                break
            live.event(item)
        reader.join()
    except KeyboardInterrupt:
        _stop(stream, reader)
        live.finish(note="interrupted")
        raise
    error = item.error
    if error is not None:
        live.finish(note=f"failed: {type(error).__name__}: {error}")
        raise error
    live.finish()
    return stream


def _stop(stream: "Stream", reader: threading.Thread) -> None:
    """Abort the read (the socket is shut down, which wakes a blocked read), and let the
    reader close the stream; close it here if the reader had not started it."""
    stream.abort()
    reader.join(STOP_TIMEOUT)
    if not reader.is_alive():
        stream.close()


def _print(stream: "Stream") -> "Stream":
    """Outside a kernel: the text deltas on stdout, as they arrive."""
    out = sys.stdout
    try:
        for delta in stream:
            out.write(delta)
            out.flush()
    except KeyboardInterrupt:
        stream.close()
        out.write("\n")
        out.flush()
        print("(interrupted)", file=sys.stderr)
        raise
    out.write("\n")
    out.flush()
    return stream


async def display_async(astream: "AsyncStream") -> "AsyncStream":
    """:func:`display` for an :class:`AsyncStream` (``await stream.display()``): the
    same display, updated from the event loop while the stream's worker reads."""
    import asyncio

    stream = astream._stream  # the synchronous stream: reasoning and tool calls are on it
    shell = _kernel_shell()
    if shell is None:
        out = sys.stdout
        try:
            async for delta in astream:
                out.write(delta)
                out.flush()
        finally:
            out.write("\n")
            out.flush()
        return astream
    live = _Live(stream, shell)
    following = astream.__anext__()
    step: "Optional[asyncio.Future[str]]" = None
    try:
        while True:
            if step is None:
                step = asyncio.ensure_future(following)
            done, _ = await asyncio.wait({step}, timeout=min(live.wait(), UPDATE_INTERVAL))
            _catch_up(live, stream)  # reasoning and tool calls come without a text delta
            if not done:
                live.tick()
                continue
            finished, step = step, None
            try:
                delta = finished.result()
            except StopAsyncIteration:
                break
            following = astream.__anext__()
            live.event(TextDelta(delta))
    except (KeyboardInterrupt, asyncio.CancelledError):
        if step is not None:
            step.cancel()
        await _quietly_close(astream)
        live.finish(note="interrupted")
        raise
    except BaseException as exc:
        live.finish(note=f"failed: {type(exc).__name__}: {exc}")
        raise
    live.finish()
    return astream


def _catch_up(live: _Live, stream: "Stream") -> None:
    """Take from the stream what the async iterator does not yield (its text aside)."""
    reasoning, refusal, calls = stream.reasoning, stream.refusal or "", stream.tool_calls
    if len(reasoning) != sum(map(len, live.reasoning)) or len(refusal) != sum(map(len, live.refusal)) or len(calls) != len(live.calls):
        live.reasoning, live.refusal, live.calls = [reasoning], [refusal], calls
        if live.first is None:
            live.first = time.monotonic() - live.started
        live.pending = True
    live.usage = stream.usage


async def _quietly_close(astream: "AsyncStream") -> None:
    try:
        await astream.aclose()
    except Exception:  # noqa: BLE001  (the first error is the one to report)
        pass


# -- rendering --------------------------------------------------------------------------

_FROM_STREAM: Any = object()


def render(
    stream: "Stream",
    *,
    live: bool = False,
    note: Optional[str] = None,
    first: Optional[float] = None,
    total: Optional[float] = None,
    text: Any = _FROM_STREAM,
    reasoning: Any = _FROM_STREAM,
    refusal: Any = _FROM_STREAM,
    calls: Any = _FROM_STREAM,
    usage: Any = _FROM_STREAM,
) -> str:
    """The Markdown of a reply: reasoning (collapsed), the answer, a refusal, tool calls
    (JSON), a note such as "interrupted", and unless ``live`` the footer. The parts are
    ``stream``'s unless given."""
    text = stream.text if text is _FROM_STREAM else text
    reasoning = stream.reasoning if reasoning is _FROM_STREAM else reasoning
    refusal = (stream.refusal or "") if refusal is _FROM_STREAM else refusal
    calls = [_call_dict(call) for call in stream.tool_calls] if calls is _FROM_STREAM else calls
    usage = stream.usage if usage is _FROM_STREAM else usage
    blocks: List[str] = []
    if reasoning:
        summary = "Reasoning…" if live and not text else "Reasoning"
        body = _closed(reasoning.replace("</details>", "&lt;/details&gt;"))
        blocks.append(f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>")
    if text:
        blocks.append(_closed(text))
    if refusal:
        blocks.append("> **Refusal:** " + _closed(refusal).replace("\n", "\n> "))
    if calls:
        shown = json.dumps(calls, ensure_ascii=False, indent=2)
        fence = "`" * max(3, 1 + max((len(run) for run in _BACKTICKS.findall(shown)), default=0))
        blocks.append(f"{fence}json\n{shown}\n{fence}")
    if note is not None:
        blocks.append(f"*({html.escape(_one_line(note))})*")
    elif live and not blocks:
        blocks.append("*…*")
    if not live:
        blocks.append(footer(stream, first=first, total=total, usage=usage))
    return "\n\n".join(blocks)


def footer(
    stream: "Stream", *, first: Optional[float] = None, total: Optional[float] = None, usage: Optional[Usage] = None
) -> str:
    """One small line: provider, model, tokens (if reported), time to first token, total."""
    items = [stream.provider, stream.model]
    if usage is not None:
        if usage.total_tokens is not None and usage.prompt_tokens is not None and usage.completion_tokens is not None:
            items.append(f"{usage.total_tokens} tokens ({usage.prompt_tokens} in, {usage.completion_tokens} out)")
        elif usage.completion_tokens is not None:
            items.append(f"{usage.completion_tokens} tokens out")
        elif usage.total_tokens is not None:
            items.append(f"{usage.total_tokens} tokens")
    if first is not None:
        items.append(f"first token {_seconds(first)}")
    if total is not None:
        items.append(f"total {_seconds(total)}")
    return "<sub>" + " · ".join(html.escape(str(item)) for item in items if item) + "</sub>"


def markdown(stream: "Stream") -> str:
    """``Stream._repr_markdown_``: a finished stream's reply with its footer; for an
    open one, a note saying how to read it (nothing is read from it)."""
    if stream.outcome is None:
        received = len(stream.text)
        state = f"{received} characters received so far" if received else "not read yet"
        return (
            f"*Reply from {html.escape(stream.provider)} ({html.escape(stream.model)}), {state}: "
            "`stream.display()` shows it as it arrives.*"
        )
    shown = _shown.get(stream)
    note = None if stream.outcome == "complete" else "interrupted" if stream.outcome == "closed" else "failed"
    return render(stream, note=note, first=shown.first if shown else None, total=shown.total if shown else None)


def ipython_display(stream: "Stream") -> None:
    """``Stream._ipython_display_``: show the stream's Markdown, except as the result of
    the cell in which :func:`display` already showed it live (it would be shown twice)."""
    shell = _kernel_shell()
    shown = _shown.get(stream)
    if shell is not None and shown is not None and shown.cell == shell.execution_count:
        return
    _ipython_display().display({"text/markdown": markdown(stream), "text/plain": repr(stream)}, raw=True)


def _call_dict(call: ToolCall) -> Dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": _arguments(call.arguments)}


def _arguments(text: str) -> Any:
    """A call's arguments decoded for reading, or its text when it is not JSON."""
    try:
        return json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        return text


def _closed(text: str) -> str:
    """``text`` with a code fence it leaves open closed, so that what follows it (the
    footer, the end of a ``<details>``) is not swallowed into the code block."""
    opened: Optional[Tuple[str, int]] = None
    for match in _FENCE_LINE.finditer(text):
        fence = match.group(1)
        if opened is None:
            opened = (fence[0], len(fence))
        elif fence[0] == opened[0] and len(fence) >= opened[1] and not text[match.end() :].split("\n", 1)[0].strip():
            opened = None
    if opened is None:
        return text
    return text + ("\n" if not text.endswith("\n") else "") + opened[0] * opened[1]


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
