"""Command line: ``python -m llmproviders`` (also installed as ``llmproviders``).

Commands::

    demo        start the embedded emulator and stream a reply from each provider
    chat        stream one reply to stdout (--emulator, or --base-url for another host)
    providers   a table of the providers, their flags and models
    emulator    serve the emulator for other clients until interrupted

``chat`` prints each delta as it arrives; with ``--json``, one JSON object per line
per chunk, in the form of openai-python's ``ChatCompletionChunk``. Errors go to
stderr as one line; the exit status is 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Type

from . import (
    Client,
    LLMProvidersError,
    ModelNotSupportedError,
    OpenAICompatible,
    Provider,
    TransportError,
    __version__,
    get_provider,
    list_providers,
)

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
        help="stream one reply to stdout",
        description="Stream one reply to stdout, each piece as it arrives.",
    )
    chat.add_argument("prompt", nargs="*", help="the message; read from stdin when omitted")
    chat.add_argument("--provider", default="FlowGpt", help="provider name (default FlowGpt; see 'providers')")
    chat.add_argument("--model", default=None, help="model (default: the provider's default)")
    chat.add_argument("--system", default=None, help="a system message to send first")
    target = chat.add_mutually_exclusive_group()
    target.add_argument("--emulator", action="store_true", help="run against the embedded emulator")
    target.add_argument(
        "--base-url",
        default=None,
        help="send to this host instead, keeping the protocol's paths; for OpenAICompatible, the API root "
        "(e.g. http://localhost:8080/v1)",
    )
    chat.add_argument(
        "--api-key",
        default=None,
        help="key for OpenAI-compatible servers, sent as a bearer token; OpenAICompatible reads "
        "LLMPROVIDERS_API_KEY when it is not given (better: a command line is visible to other users)",
    )
    chat.add_argument("--proxy", default=None, help="http://, https:// or socks5:// proxy URL")
    chat.add_argument("--timeout", type=float, default=None, help="connect and read timeout in seconds")
    chat.add_argument("--no-stream", action="store_true", help="ask for the whole reply and print it at once")
    chat.add_argument("--json", action="store_true", help="print one JSON chunk per line (OpenAI's chat.completion.chunk)")
    chat.set_defaults(run=_chat)

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
    provider = get_provider(args.provider)
    if args.prompt:
        prompt = " ".join(args.prompt)
    else:
        if sys.stdin.isatty():
            print("(reading the prompt from stdin; end it with Ctrl+D)", file=sys.stderr)
        prompt = sys.stdin.read().strip()
    if not prompt.strip():
        raise UsageError("no prompt: pass it as arguments or on stdin")
    messages: List[Dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": prompt})
    out = sys.stdout
    with _emulator_base_url(args.emulator) as root:
        base_url = _on_emulator(provider, root) if root else args.base_url
        client = Client(provider, base_url=base_url, api_key=args.api_key, proxy=args.proxy, timeout=args.timeout)
        completions = client.chat.completions
        if args.no_stream:
            completion = completions.create(model=args.model, messages=messages, stream=False)
            text = completion.choices[0].message.content or ""
            out.write(_json(completion.to_dict()) if args.json else text + "\n")
            return 0
        with completions.create(model=args.model, messages=messages, stream=True) as chunks:
            for chunk in chunks:
                if args.json:
                    out.write(_json(chunk.to_dict()))
                else:
                    out.write(chunk.choices[0].delta.content or "")
                out.flush()
    if not args.json:
        out.write("\n")
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
