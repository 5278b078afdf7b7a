"""The ``batch`` command line: ``python -m llmproviders batch ...``.

Two forms::

    llmproviders batch INPUT.jsonl --provider P [--model M] [--workers N] [--rate 60/min]
                       [--db results.db] [--out out.jsonl] [-o key=value ...] [--retry-failed]
    llmproviders batch export results.db [--out out.jsonl]

Each input line is a JSON object with ``prompt`` or ``messages``, an optional ``id`` and
optional ``options``; blank lines are skipped (``-`` reads stdin). ``-o key=value``
passes an option to every call (``value`` is read as JSON when it is JSON, else as a
string: ``-o temperature=0.2 -o base_url=http://localhost:8000``). Results go to
``--out`` (else stdout) as one JSON line per item, as ``export`` writes them; progress
and a summary go to stderr. The exit status is 0 when every item succeeded, 1 when any
failed (or on an error before the run), 2 for usage errors, 130 on Ctrl-C (after
writing what finished).

:func:`add_batch_commands` adds the command to the main parser's subcommands.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from typing import IO, TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ._exceptions import InvalidArgumentError, LLMProvidersError
from ._provider import get_provider

if TYPE_CHECKING:  # pragma: no cover
    from ._batch_result import BatchResult

__all__ = ["add_batch_commands"]

USAGE = """%(prog)s INPUT.jsonl --provider P [--model M] [--workers N] [--rate 60/min] [--db results.db]
                    [--out out.jsonl] [-o key=value ...] [--retry-failed] [--no-progress]
       %(prog)s export results.db [--out out.jsonl]"""
_ITEM = re.compile(r"^batch item (\d+)(?: \(id [^)]*\))?: ")


def add_batch_commands(commands: Any) -> None:
    """Add ``batch`` (and its ``export`` form) to ``commands``, an argparse subparsers object."""
    parser = commands.add_parser(
        "batch",
        usage=USAGE,
        help="run many prompts from a JSONL file (resumable with --db), or export a store",
        description="Run every prompt of a JSONL file through one provider, in parallel, and write one JSON "
        "line per item in input order. With --db the job is kept in SQLite: run the same command again to "
        "resume, without sending finished items again. 'batch export results.db' writes a store out.",
    )
    parser.add_argument("input", metavar="INPUT.jsonl", help="one JSON object per line ('-': stdin), or 'export'")
    parser.add_argument("store", nargs="?", metavar="results.db", help="with 'export': the store to write out")
    parser.add_argument("--provider", default=None, help="provider name (see 'providers')")
    parser.add_argument("--model", default=None, help="model (default: the provider's default)")
    parser.add_argument("--workers", type=int, default=8, help="items in flight at once (default 8)")
    parser.add_argument("--rate", default=None, metavar="N/min", help="cap request starts, e.g. 60/min or 5/s")
    parser.add_argument("--db", default=None, metavar="results.db", help="keep the job in this SQLite store (resumable)")
    parser.add_argument("--out", default=None, metavar="out.jsonl", help="write the results here (default: stdout)")
    parser.add_argument(
        "-o", "--option", action="append", default=[], metavar="key=value",
        help="an option for every call, e.g. -o temperature=0.2 -o base_url=http://localhost:8000 (repeatable)",
    )
    parser.add_argument("--retry-failed", action="store_true", help="send again the items the store has as failed")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.set_defaults(run=_run, batch_parser=parser)


def _run(args: argparse.Namespace) -> int:
    from ._batch import BatchInterrupted, batch  # loaded when the command runs, not for every command line

    parser: argparse.ArgumentParser = args.batch_parser
    if args.input == "export":
        return _export(args, parser)
    if args.store is not None:
        parser.error(f"unexpected argument {args.store!r} (did you mean 'batch export {args.store}'?)")
    if not args.provider:
        parser.error("--provider is required (the names are listed by 'llmproviders providers')")
    options = _options(args.option, parser)
    provider = get_provider(args.provider)
    inputs, lines = _read_inputs(args.input)
    try:
        result = batch(
            provider,
            inputs,
            model=args.model,
            workers=args.workers,
            store=args.db,
            progress=not args.no_progress,
            rate_limit=args.rate,
            retry_failed=args.retry_failed,
            **options,
        )
    except BatchInterrupted as interrupted:
        _write_results(interrupted.result, args.out)
        print(f"\n{interrupted}" + (f"; finished items are in {args.db}" if args.db else ""), file=sys.stderr)
        raise
    except LLMProvidersError as error:
        _name_line(error, args.input, lines)
        raise
    _write_results(result, args.out)
    print(_summary(result, args.db, args.out), file=sys.stderr)
    return 1 if result.failed else 0


def _export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.store is None:
        parser.error("export needs the store: batch export results.db --out out.jsonl")
    if not os.path.isfile(args.store):
        raise InvalidArgumentError(f"no batch store at {args.store!r}")
    from ._batch_store import BatchStore

    with BatchStore(args.store) as store:
        with _output(args.out) as out:
            count = store.export(out)
    print(f"exported {count} items from {args.store}" + (f" to {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def _options(pairs: Sequence[str], parser: argparse.ArgumentParser) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name.strip():
            parser.error(f"-o takes key=value, not {pair!r}")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        options[name.strip()] = value
    return options


def _read_inputs(path: str) -> Tuple[List[Dict[str, Any]], List[int]]:
    """The input file's items, and the line number of each."""
    inputs: List[Dict[str, Any]] = []
    lines: List[int] = []
    name = "stdin" if path == "-" else path
    try:
        with contextlib.ExitStack() as stack:
            file: IO[str] = sys.stdin if path == "-" else stack.enter_context(open(path, encoding="utf-8"))
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError as exc:
                    raise InvalidArgumentError(f"{name} line {number}: not JSON ({exc})") from None
                if not isinstance(item, dict):
                    raise InvalidArgumentError(
                        f"{name} line {number}: each line must be a JSON object with prompt or messages, "
                        f"not {type(item).__name__}"
                    )
                inputs.append(item)
                lines.append(number)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidArgumentError(f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return inputs, lines


def _name_line(error: LLMProvidersError, path: str, lines: List[int]) -> None:
    """Turn "batch item 3: ..." into "INPUT.jsonl line 5: ..." (the line the item is on)."""
    match = _ITEM.match(error.message)
    if match and int(match.group(1)) < len(lines):
        name = "stdin" if path == "-" else path
        error.message = f"{name} line {lines[int(match.group(1))]}: {error.message[match.end():]}"
        error.args = (error.message,)


@contextlib.contextmanager
def _output(path: Optional[str]) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        yield file


def _write_results(result: "BatchResult", path: Optional[str]) -> None:
    with _output(path) as out:
        for item in result:
            out.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")


def _summary(result: "BatchResult", db: Optional[str], out: Optional[str]) -> str:
    text = f"batch: {result.done} done, {result.failed} failed, {result.skipped} skipped in {result.seconds:.1f} s"
    if db:
        text += f"; store: {db}"
    if out:
        text += f"; results: {out}"
    failed = result.errors
    for item in failed[:3]:
        error = " ".join(str(item.error).split())
        text += f"\n  item {item.index}" + (f" (id {item.id!r})" if item.id is not None else "") + f": {error}"
    if len(failed) > 3:
        text += f"\n  ... and {len(failed) - 3} more failed"
    return text
