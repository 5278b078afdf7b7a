"""Command line: ``python -m llmproviders`` (also installed as ``llmproviders``).

Commands::

    demo        start the embedded emulator and stream a reply from each provider
    chat        chat in the terminal, or stream one reply to stdout when the prompt is
                given or piped (--emulator, or --base-url for another host)
    models      the models a server lists (GET /v1/models), one per line
    providers   a table of the providers, their flags and models
    emulator    serve the emulator for other clients until interrupted

``chat`` prints each delta as it arrives: the answer on stdout, the model's reasoning
apart from it (dimmed on a terminal, on stderr otherwise; ``--hide-reasoning`` drops
it) and each tool call as one JSON object per line on stdout; with ``--json``, one JSON
object per chunk, in the form of openai-python's ``ChatCompletionChunk``. ``-o
key=value`` passes a provider option (the value is read as JSON when it is JSON).
When stdin is a terminal and no prompt is given, ``chat`` is an interactive chat that
remembers the conversation (``/undo``, ``/reset``, ``/save FILE``, ``/exit``; Ctrl-D
quits; Ctrl-C stops a reply and stays); ``--continue FILE`` resumes a saved one.
Errors go to stderr as one line; the exit status is 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import sys
import time
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Type

from . import (
    Client,
    Conversation,
    LLMProvidersError,
    ModelNotSupportedError,
    OpenAICompatible,
    Provider,
    ReasoningDelta,
    RefusalDelta,
    Stream,
    TextDelta,
    ToolCall,
    TransportError,
    __version__,
    get_provider,
    list_providers,
)
from ._client import ChatCompletionStream, _completion, _takes_api_key
from ._conversation import saved_provider

DEMO_QUESTION = "Привет! What is streaming, in one sentence?"
DEMO_MODEL = "gpt-3.5-turbo"  # for providers without a default model (OpenAICompatible)
MODELS_WIDTH = 60  # the longest the models column gets in the providers table


class UsageError(Exception):
    """A mistake on the command line that argparse cannot see (exit status 2)."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LLMProvidersError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the upstream said
        print(f"error: {message}{_hint(exc, args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _hint(exc: LLMProvidersError, args: argparse.Namespace) -> str:
    """What to do about ``exc`` on the command line, when the message doesn't say it."""
    if isinstance(exc, ModelNotSupportedError) and getattr(args, "model", "") is None:
        return " (command line: --model NAME)"
    if not isinstance(exc, TransportError) or getattr(args, "emulator", True):
        return ""
    if getattr(args, "base_url", None) is None:
        return " (the original sites are offline: add --emulator, or --base-url for another host)"
    return " (is a server running at --base-url? --emulator runs the embedded one)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmproviders", description="Streaming chat completions from LLM web providers.")
    parser.add_argument("--version", action="version", version=f"llmproviders {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="stream a reply from every provider through the embedded emulator")
    demo.add_argument("--framing", choices=("chunked", "close"), default="chunked", help="how the emulator frames bodies")
    demo.add_argument("--pace", type=_seconds, default=0.03, help="seconds between streamed pieces (default 0.03)")
    demo.set_defaults(run=_demo)

    chat = commands.add_parser(
        "chat",
        help="chat in the terminal, or stream one reply to stdout",
        description="With a prompt (as arguments or piped in): stream one reply to stdout, each piece as it "
        "arrives. Without one, on a terminal: an interactive chat that remembers the conversation "
        "(/undo, /reset, /save FILE, /exit; Ctrl-D quits, Ctrl-C stops a reply).",
    )
    chat.add_argument("prompt", nargs="*", help="the message; read from stdin when omitted and stdin is not a terminal")
    chat.add_argument("--provider", default=None, help="provider name (default FlowGpt, or the saved one; see 'providers')")
    chat.add_argument("--model", default=None, help="model (default: the provider's default)")
    chat.add_argument("--system", default=None, help="a system message to send first")
    _add_target(chat)
    chat.add_argument("--proxy", default=None, help="http://, https:// or socks5:// proxy URL")
    chat.add_argument("--timeout", type=float, default=None, help="connect and read timeout in seconds")
    chat.add_argument(
        "-o",
        "--option",
        dest="options",
        metavar="KEY=VALUE",
        type=_option,
        action="append",
        default=[],
        help="a provider option, e.g. -o temperature=0.2 or -o 'stop=[\"\\n\"]' (the value is read as JSON "
        "when it is valid JSON, else as a string); repeatable",
    )
    chat.add_argument(
        "--continue",
        dest="continue_file",
        metavar="FILE",
        default=None,
        help="resume a conversation saved with /save (its provider, model, system message and options)",
    )
    chat.add_argument("--hide-reasoning", action="store_true", help="do not show the model's reasoning")
    chat.add_argument("--no-stream", action="store_true", help="ask for the whole reply and print it at once")
    chat.add_argument("--json", action="store_true", help="print one JSON chunk per line (OpenAI's chat.completion.chunk)")
    chat.set_defaults(run=_chat)

    models = commands.add_parser(
        "models",
        help="the models a server lists (GET /v1/models)",
        description="List the models of an OpenAI-compatible server (GET {base_url}/models), one id per line; "
        "for another provider, the models it accepts.",
    )
    models.add_argument("--provider", default="OpenAICompatible", help="provider name (default OpenAICompatible)")
    _add_target(models)
    models.add_argument("--timeout", type=float, default=None, help="connect and read timeout in seconds")
    models.add_argument("--json", action="store_true", help="print OpenAI's model list object")
    models.set_defaults(run=_models)

    providers = commands.add_parser("providers", help="a table of the providers, their flags and models")
    providers.set_defaults(run=_providers)

    emulator = commands.add_parser("emulator", help="serve the emulator until interrupted")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    emulator.add_argument("--framing", choices=("chunked", "close"), default="chunked")
    emulator.add_argument("--pace", type=_seconds, default=0.0, help="seconds between streamed pieces")
    emulator.add_argument("--api-key", default=None, help="require this bearer key on the OpenAI endpoints")
    emulator.set_defaults(run=_emulator)
    from ._batch_cli import add_batch_commands  # batch jobs: 'batch INPUT.jsonl ...', 'batch export results.db'
    add_batch_commands(commands)
    return parser


def _add_target(command: argparse.ArgumentParser) -> None:
    """Where a command sends its requests: --emulator or --base-url, and --api-key."""
    target = command.add_mutually_exclusive_group()
    target.add_argument("--emulator", action="store_true", help="run against the embedded emulator")
    target.add_argument(
        "--base-url",
        default=None,
        help="send to this host instead, keeping the protocol's paths; for OpenAICompatible, the API root "
        "(e.g. http://localhost:8080/v1)",
    )
    command.add_argument(
        "--api-key",
        default=None,
        help="key for OpenAI-compatible servers, sent as a bearer token; OpenAICompatible reads "
        "LLMPROVIDERS_API_KEY when it is not given (better: a command line is visible to other users)",
    )


#: ``-o`` keys that are the command's own flags (or not options at all).
_NOT_OPTIONS = {"model": "--model", "system": "--system", "provider": "--provider", "messages": "the prompt", "keep_partial": None}


def _option(text: str) -> Tuple[str, Any]:
    """argparse type: ``KEY=VALUE``, the value read as JSON when it is valid JSON."""
    key, separator, raw = text.partition("=")
    key = key.strip()
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if key in _NOT_OPTIONS:
        instead = _NOT_OPTIONS[key]
        raise argparse.ArgumentTypeError(f"{key} is not an option" + (f": use {instead}" if instead else ""))
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds >= 0 (``--pace -1`` is a usage error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text!r}")
    return value


def _port(text: str) -> int:
    """argparse type: a TCP port, 0 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535 (0 picks a free port), got {text!r}")
    return value


def _bind_error(host: str, port: int, exc: OSError) -> UsageError:
    """The one-line error for an emulator that could not listen on ``host:port``."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = " (--port 0 picks a free port)" if exc.errno == errno.EADDRINUSE else ""
    return UsageError(f"cannot serve the emulator on {where}: {reason}{hint}")


@contextlib.contextmanager
def _emulator_base_url(enabled: bool, **options: Any) -> Iterator[Optional[str]]:
    if not enabled:
        yield None
        return
    from .testing import Emulator

    emulator = Emulator(**options)
    try:
        emulator.start()
    except OSError as exc:
        raise _bind_error(emulator.host, 0, exc) from exc
    try:
        yield emulator.base_url
    finally:
        emulator.stop()


def _on_emulator(provider: Type[Provider], root: str) -> str:
    """The base URL that points ``provider`` at the emulator at ``root``: its root, or
    for OpenAI-compatible providers the ``/v1`` API root."""
    return root + "/v1" if issubclass(provider, OpenAICompatible) else root


def _demo(args: argparse.Namespace) -> int:
    messages = [{"role": "user", "content": DEMO_QUESTION}]
    with _emulator_base_url(True, framing=args.framing, pace=args.pace) as root:
        assert root is not None
        print(f"Embedded emulator at {root} ({args.framing} bodies); the original sites are offline.")
        print(f"Question: {DEMO_QUESTION}\n")
        for provider in list_providers():
            model = provider.get_model(provider.default_model or DEMO_MODEL)
            print(f"{provider.__name__} [{model}]: ", end="", flush=True)
            started = time.perf_counter()
            first: Optional[float] = None
            pieces = 0
            for delta in provider.create_completion(model, messages, base_url=_on_emulator(provider, root)):
                if first is None:
                    first = time.perf_counter() - started
                pieces += 1
                print(delta, end="", flush=True)
            total = time.perf_counter() - started
            print(f"\n    {pieces} deltas, first after {1000 * (first or 0):.0f} ms, done in {1000 * total:.0f} ms\n")
    return 0


def _chat(args: argparse.Namespace) -> int:
    saved = _read_saved(args.continue_file) if args.continue_file else None
    interactive = not args.prompt and not args.json and sys.stdin.isatty()
    prompt = None if interactive else _prompt(args)
    with _emulator_base_url(args.emulator) as root:
        chat = _conversation(args, saved, root)
        if interactive:
            return _interactive(chat, args)
        assert prompt is not None
        stream = chat.send(prompt, stream=not args.no_stream)
        out = sys.stdout
        if args.json and args.no_stream:
            with stream:
                text = "".join(stream)
            out.write(_json(_completion(stream, text).to_dict()))
        elif args.json:
            with ChatCompletionStream(stream) as chunks:
                for chunk in chunks:
                    out.write(_json(chunk.to_dict()))
                    out.flush()
        else:
            _show_reply(stream, _Printer(hide_reasoning=args.hide_reasoning))
    return 0


def _prompt(args: argparse.Namespace) -> str:
    """The single-shot prompt: the arguments, else stdin."""
    if args.prompt:
        prompt = " ".join(args.prompt)
    else:
        if sys.stdin.isatty():
            print("(reading the prompt from stdin; end it with Ctrl+D)", file=sys.stderr)
        prompt = sys.stdin.read().strip()
    if not prompt.strip():
        raise UsageError("no prompt: pass it as arguments or on stdin")
    return prompt


def _read_saved(path: str) -> Dict[str, Any]:
    """A conversation saved with /save (``Conversation.to_dict()`` as JSON)."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as file:
            data = json.load(file)
    except OSError as exc:
        raise UsageError(f"--continue: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"--continue: {path} is not a saved conversation (not JSON: {exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--continue: {path} is not a saved conversation (not a JSON object)")
    return data


def _conversation(args: argparse.Namespace, saved: Optional[Dict[str, Any]], root: Optional[str]) -> Conversation:
    """The conversation the command line describes (a saved one, when --continue)."""
    provider: Any
    if args.provider is not None:
        provider = get_provider(args.provider)
    elif saved is not None:
        provider = saved_provider(saved)  # (a RetryProvider, if that is what was saved)
    else:
        provider = get_provider("FlowGpt")
    options: Dict[str, Any] = {}
    base_url = (_on_emulator(provider, root) if isinstance(provider, type) else root) if root else args.base_url
    if base_url is not None:
        options["base_url"] = base_url
    if args.api_key is not None and _takes_api_key(provider):
        options["api_key"] = args.api_key
    if args.proxy is not None:
        options["proxy"] = args.proxy
    if args.timeout is not None:
        options["timeout"] = args.timeout
    options.update(args.options)
    if args.system is not None:
        options["system"] = args.system
    if saved is not None:
        return Conversation.from_dict(saved, provider=provider, model=args.model, keep_partial=True, **options)
    return Conversation(provider, args.model, keep_partial=True, **options)


class _Printer:
    """Writes one reply as it arrives: the answer on stdout; the reasoning apart from it
    (dimmed before the answer on a terminal, on stderr otherwise); each tool call as
    one JSON object per line on stdout."""

    DIM, RESET = "\x1b[2m", "\x1b[0m"

    def __init__(self, *, hide_reasoning: bool, out: Optional[IO[str]] = None, err: Optional[IO[str]] = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.hide_reasoning = hide_reasoning
        terminal = self.out.isatty()
        self.reasoning_out = self.out if terminal else self.err
        self.color = terminal and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.reasoning = False  # the reasoning is being written
        self.line_start = True  # stdout is at the start of a line

    def event(self, event: Any) -> None:
        kind = type(event)
        if kind is ReasoningDelta:
            if self.hide_reasoning or not event.text:
                return
            if not self.reasoning:
                self.reasoning = True
                if self.reasoning_out is self.out:
                    self._line()
                    if self.color:
                        self.out.write(self.DIM)
            if self.reasoning_out is self.out:
                self.line_start = event.text.endswith("\n")  # (first: a Ctrl-C may land right after the write)
            self.reasoning_out.write(event.text)
            self.reasoning_out.flush()
        elif kind is TextDelta or kind is RefusalDelta:
            if event.text:
                self._end_reasoning()
                self.line_start = event.text.endswith("\n")
                self.out.write(event.text)
                self.out.flush()
        elif kind is ToolCall:
            self._end_reasoning()
            self._line()
            self.out.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
            self.out.flush()
            self.line_start = True

    def _end_reasoning(self) -> None:
        """The answer begins: close the reasoning, with a blank line after it."""
        if not self.reasoning:
            return
        self.reasoning = False
        if self.reasoning_out is self.out:
            if self.color:
                self.out.write(self.RESET)
            self.out.write("\n" if self.line_start else "\n\n")
            self.line_start = True
        else:
            self.err.write("\n")
            self.err.flush()

    def _line(self) -> None:
        if not self.line_start:
            self.line_start = True
            self.out.write("\n")

    def finish(self) -> None:
        """The reply ended (or stopped): leave stdout at the start of a line."""
        if self.reasoning and self.reasoning_out is self.out and self.color:
            self.out.write(self.RESET)
        if self.reasoning and self.reasoning_out is self.err:
            self.err.write("\n")
        self.reasoning = False
        self._line()
        self.out.flush()


def _show_reply(stream: Stream, printer: _Printer) -> None:
    """Print ``stream``'s events as they arrive; always closes it and ends the line."""
    try:
        with stream:
            for event in stream.events():
                printer.event(event)
    finally:
        printer.finish()


COMMANDS_HELP = "/undo, /reset, /save FILE, /exit (Ctrl-D quits; Ctrl-C stops a reply)"


def _interactive(chat: Conversation, args: argparse.Namespace) -> int:
    """The interactive chat: read a line, stream the reply, until /exit or end of input."""
    try:
        import readline  # noqa: F401  (line editing and history for input(), where available)
    except ImportError:  # pragma: no cover - Windows
        pass
    err = sys.stderr
    provider = chat.provider
    model = chat.model or getattr(provider, "default_model", None) or "each provider's default model"
    print(f"Chatting with {getattr(provider, '__name__', provider)} ({model}). {COMMANDS_HELP}.", file=err)
    history = [m for m in chat.messages if m["role"] != "system"]
    if history:
        print(f"(continuing a conversation of {len(history)} messages)", file=err)
    while True:
        try:
            line = input("> ")
        except EOFError:  # Ctrl-D at the prompt
            print(file=err)
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/") and not text.startswith("//"):
            if _command(chat, text):
                return 0
            continue
        if text.startswith("//"):  # a message that starts with "/"
            text = text[1:]
        _reply(chat, text, args)


def _reply(chat: Conversation, text: str, args: argparse.Namespace) -> None:
    """Send one message and print the reply; an error or Ctrl-C ends the reply, not the chat."""
    err = sys.stderr
    printer = _Printer(hide_reasoning=args.hide_reasoning)
    try:
        stream = chat.send(text, stream=not args.no_stream)
        _show_reply(stream, printer)
    except KeyboardInterrupt:  # the stream is closed: its connection too
        note = "the partial reply stays in the conversation; /undo removes it" if _partial(chat) else "nothing was kept"
        print(f"(stopped: {note})", file=err)
    except LLMProvidersError as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}{_hint(exc, args)}", file=err)
        if _partial(chat):
            print("(the partial reply stays in the conversation; /undo removes it)", file=err)


def _partial(chat: Conversation) -> bool:
    messages = chat.messages
    return bool(messages) and bool(messages[-1].get("partial"))


def _command(chat: Conversation, text: str) -> bool:
    """Run a /command; True when the chat should end."""
    err = sys.stderr
    name, _, rest = text.partition(" ")
    rest = rest.strip()
    if name in ("/exit", "/quit"):
        return True
    if name == "/undo":
        removed = chat.undo()
        print(f"(removed the last exchange: {len(removed)} messages)" if removed else "(nothing to undo)", file=err)
    elif name == "/reset":
        chat.reset()
        print("(the conversation is empty again)", file=err)
    elif name == "/save":
        if not rest:
            print("usage: /save FILE (the rest of the line is the file name)", file=err)
            return False
        path = os.path.expanduser(rest)
        try:
            with open(path, "w", encoding="utf-8") as file:
                json.dump(chat.to_dict(), file, ensure_ascii=False, indent=2)
                file.write("\n")
        except OSError as exc:
            print(f"error: cannot save to {rest}: {exc.strerror or exc}", file=err)
            return False
        count = len([m for m in chat.messages if m["role"] != "system"])
        print(f"(saved {count} messages to {rest}; --continue {rest} resumes it)", file=err)
    else:
        print(f"unknown command {name}; commands: {COMMANDS_HELP}; start a message with // to send a leading /", file=err)
    return False


def _models(args: argparse.Namespace) -> int:
    provider = get_provider(args.provider)
    with _emulator_base_url(args.emulator) as root:
        base_url = _on_emulator(provider, root) if root else args.base_url
        if (
            issubclass(provider, OpenAICompatible)
            and provider.api_root is None
            and provider.resolve_base_url(base_url) is None
        ):
            raise UsageError(f"{provider.__name__}: which server? pass --base-url http://host:port/v1 (or --emulator)")
        listing = Client(provider, base_url=base_url, api_key=args.api_key, timeout=args.timeout).models.list()
    if args.json:
        sys.stdout.write(_json(listing.to_dict()))
    else:
        for model in listing:
            print(model.id)
    return 0


def _json(value: Dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def _providers(args: argparse.Namespace) -> int:
    rows = [["PROVIDER", "WORKING", "STREAM", "HISTORY", "SYSTEM", "DEFAULT MODEL", "MODELS"]]
    for provider in list_providers():
        flags = (provider.working, provider.supports_stream, provider.supports_message_history, provider.supports_system_message)
        models = _shorten(list(provider.models), MODELS_WIDTH) if provider.models else "any"
        rows.append([provider.__name__, *("yes" if flag else "-" for flag in flags), provider.default_model or "-", models])
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _shorten(names: List[str], width: int) -> str:
    """``names`` joined with commas, cut to about ``width`` characters with a count of the rest."""
    text = ", ".join(names)
    if len(text) <= width:
        return text
    shown: List[str] = []
    for name in names:
        more = f", … +{len(names) - len(shown) - 1} more"
        if len(", ".join(shown + [name]) + more) > width:
            break
        shown.append(name)
    return ", ".join(shown + [f"… +{len(names) - len(shown)} more"])


def _emulator(args: argparse.Namespace) -> int:
    from .testing import serve

    try:
        serve(host=args.host, port=args.port, framing=args.framing, pace=args.pace, api_key=args.api_key)
    except BrokenPipeError:
        raise
    except OSError as exc:  # serve() raises only its bind's OSError, before it prints anything
        raise _bind_error(args.host, args.port, exc) from exc
    return 0


if __name__ == "__main__":
    sys.exit(main())
