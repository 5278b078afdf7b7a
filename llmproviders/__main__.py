"""Command line: ``python -m llmproviders`` (also installed as ``llmproviders``).

Commands::

    demo        start the embedded emulator and stream a reply from each provider
    chat        stream one reply to stdout (--emulator, or --base-url for another host)
    providers   list the providers with their flags and models
    emulator    serve the emulator for other clients until interrupted

Errors go to stderr as one line; the exit status is 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Iterator, List, Optional, Sequence

from . import LLMProvidersError, TransportError, __version__, get_provider, list_providers
from ._messages import Messages

DEMO_QUESTION = "Привет! What is streaming, in one sentence?"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except LLMProvidersError as exc:
        hint = ""
        if isinstance(exc, TransportError) and getattr(args, "base_url", None) is None and not getattr(args, "emulator", False):
            hint = " (the original sites are offline: add --emulator, or --base-url for another host)"
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmproviders", description="Streaming chat completions from LLM web providers.")
    parser.add_argument("--version", action="version", version=f"llmproviders {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="stream a reply from every provider through the embedded emulator")
    demo.add_argument("--framing", choices=("chunked", "close"), default="chunked", help="how the emulator frames bodies")
    demo.add_argument("--pace", type=float, default=0.03, help="seconds between streamed pieces (default 0.03)")
    demo.set_defaults(run=_demo)

    chat = commands.add_parser("chat", help="stream one reply to stdout")
    chat.add_argument("prompt", nargs="*", help="the message; read from stdin when omitted")
    chat.add_argument("--provider", default="FlowGpt", help="provider name (default FlowGpt)")
    chat.add_argument("--model", default=None, help="model (default: the provider's default)")
    chat.add_argument("--system", default=None, help="a system message to send first")
    target = chat.add_mutually_exclusive_group()
    target.add_argument("--emulator", action="store_true", help="run against the embedded emulator")
    target.add_argument("--base-url", default=None, help="send to this host instead, keeping the protocol's paths")
    chat.add_argument("--proxy", default=None, help="http://, https:// or socks5:// proxy URL")
    chat.add_argument("--timeout", type=float, default=None, help="connect and read timeout in seconds")
    chat.set_defaults(run=_chat)

    providers = commands.add_parser("providers", help="list providers, their flags and models")
    providers.set_defaults(run=_providers)

    emulator = commands.add_parser("emulator", help="serve the emulator until interrupted")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8000)
    emulator.add_argument("--framing", choices=("chunked", "close"), default="chunked")
    emulator.add_argument("--pace", type=float, default=0.0, help="seconds between streamed pieces")
    emulator.set_defaults(run=_emulator)
    return parser


@contextlib.contextmanager
def _emulator_base_url(enabled: bool, **options: object) -> Iterator[Optional[str]]:
    if not enabled:
        yield None
        return
    from .testing import Emulator

    with Emulator(**options) as emulator:  # type: ignore[arg-type]
        yield emulator.base_url


def _demo(args: argparse.Namespace) -> int:
    messages: Messages = [{"role": "user", "content": DEMO_QUESTION}]
    with _emulator_base_url(True, framing=args.framing, pace=args.pace) as base_url:
        print(f"Embedded emulator at {base_url} ({args.framing} bodies); the original sites are offline.")
        print(f"Question: {DEMO_QUESTION}\n")
        for provider in list_providers():
            model = provider.get_model(None)
            print(f"{provider.__name__} [{model}]: ", end="", flush=True)
            started = time.perf_counter()
            first: Optional[float] = None
            pieces = 0
            for delta in provider.create_completion(model, messages, base_url=base_url):
                if first is None:
                    first = time.perf_counter() - started
                pieces += 1
                print(delta, end="", flush=True)
            total = time.perf_counter() - started
            print(f"\n    {pieces} deltas, first after {1000 * (first or 0):.0f} ms, done in {1000 * total:.0f} ms\n")
    return 0


def _chat(args: argparse.Namespace) -> int:
    provider = get_provider(args.provider)
    prompt = " ".join(args.prompt) if args.prompt else sys.stdin.read().strip()
    if not prompt.strip():
        print("error: no prompt: pass it as arguments or on stdin", file=sys.stderr)
        return 2
    messages: List[dict] = [{"role": "system", "content": args.system}] if args.system else []
    messages.append({"role": "user", "content": prompt})
    with _emulator_base_url(args.emulator) as emulator_url:
        stream = provider.create_completion(
            args.model, messages, base_url=emulator_url or args.base_url, proxy=args.proxy, timeout=args.timeout
        )
        with stream:
            for delta in stream:
                sys.stdout.write(delta)
                sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _providers(args: argparse.Namespace) -> int:
    for provider in list_providers():
        flags = [name[len("supports_") :] for name in dir(provider) if name.startswith("supports_") and getattr(provider, name)]
        models = ", ".join(provider.get_models()) or "any"
        aliases = ", ".join(f"{a}->{t}" for a, t in provider.model_aliases.items())
        print(f"{provider.__name__}  (working: {'yes' if provider.working else 'no'})")
        print(f"    url:           {provider.url}")
        print(f"    default model: {provider.default_model}")
        print(f"    models:        {models}")
        if aliases:
            print(f"    aliases:       {aliases}")
        print(f"    supports:      {', '.join(flags) or '-'}")
    return 0


def _emulator(args: argparse.Namespace) -> int:
    from .testing import serve

    serve(host=args.host, port=args.port, framing=args.framing, pace=args.pace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
