"""Our chunked-body reader against urllib3's ``read_chunked``: a differential property test
over generated bodies, and the switch back to urllib3's reader (issue 12).

Each generated body is served through http.client's own response parsing over a fake
socket whose reads return the body in generated pieces, wrapped in urllib3's
``HTTPResponse`` (as requests does). Both readers must give the same bytes, or both
fail. One difference is by design and pinned here: a body cut inside a chunk-size line
after digits that read as zero (``0`` of ``0\r\n``, or of ``06\r\n``) is complete for
urllib3, which parses the digits it got as the last chunk, and cut short for us: the
line could have gone on. (urllib3 also skips the two bytes after a chunk's data
without looking at them, so a bare LF there is not generated.)
"""

import http.client
import io
from typing import List, Tuple

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmproviders import GPROChat
from llmproviders._http import chunked
from llmproviders._http.chunked import READ_ERRORS, READER_ENV, read_chunks

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"


class _Pieces(io.RawIOBase):
    def __init__(self, pieces: List[bytes]) -> None:
        self.pieces = list(pieces)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if not self.pieces:
            return 0
        piece = self.pieces.pop(0)
        if len(piece) > len(buffer):
            self.pieces.insert(0, piece[len(buffer) :])
            piece = piece[: len(buffer)]
        buffer[: len(piece)] = piece
        return len(piece)


class _FakeSocket:
    """What http.client.HTTPResponse needs of a socket: ``makefile``."""

    def __init__(self, pieces: List[bytes]) -> None:
        self.pieces = pieces

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_Pieces(self.pieces), buffer_size=64)


def _response(pieces: List[bytes]) -> urllib3.HTTPResponse:
    message = http.client.HTTPResponse(_FakeSocket(pieces), method="POST")  # type: ignore[arg-type]
    message.begin()
    return urllib3.HTTPResponse(
        body=message,
        headers=dict(message.getheaders()),
        status=message.status,
        preload_content=False,
        decode_content=False,
        original_response=message,
    )


def _run(reader: str, pieces: List[bytes]) -> Tuple[bool, bytes]:
    """(completed, the bytes delivered) for one reader over the body in ``pieces``."""
    raw = _response(pieces)
    out = bytearray()
    try:
        if reader == "ours":
            reads = read_chunks(raw)
            assert reads is not None  # http.client's buffered reader is there: ours applies
        else:
            reads = raw.read_chunked(chunked.READ_SIZE)
        for data in reads:
            out += data
    except READ_ERRORS:
        return False, bytes(out)
    finally:
        raw.close()
    return True, bytes(out)


_HEX = st.sampled_from(["x", "X"])
_EXTENSION = st.sampled_from([b"", b";name", b";name=value", b';q="quoted;value"', b" ;ext", b"\t;a=1;b=2"])
_EOL = st.sampled_from([b"\r\n", b"\n"])  # a bare LF ends a line too (urllib3 and we agree there)


@st.composite
def chunked_bodies(draw) -> Tuple[bytes, bytes, List[Tuple[int, int, int]]]:
    """(body, its data, and for each chunk-size line: where it starts and ends, and how
    many data bytes came before it)."""
    sizes = draw(st.lists(st.one_of(st.integers(1, 40), st.integers(41, 600)), max_size=6))
    body = bytearray()
    data = bytearray()
    lines = []
    for number, size in enumerate(sizes):
        piece = bytes((number * 7 + i) % 251 for i in range(size))
        digits = ("%" + draw(_HEX)) % size
        zeros = b"0" * draw(st.integers(0, 2))  # leading zeros
        start = len(body)
        body += zeros + digits.encode() + draw(_EXTENSION) + draw(_EOL)
        lines.append((start, len(body), len(data)))
        body += piece + b"\r\n"
        data += piece
    start = len(body)
    body += b"0" * draw(st.integers(1, 3)) + draw(_EXTENSION) + draw(_EOL)  # the last chunk
    lines.append((start, len(body), len(data)))
    for _ in range(draw(st.integers(0, 3))):
        body += b"X-Trailer-%d: value" % draw(st.integers(0, 99)) + draw(_EOL)
    if draw(st.booleans()):
        body += draw(_EOL)  # the blank line that ends the trailer section (else: EOF ends it)
    return bytes(body), bytes(data), lines


@st.composite
def deliveries(draw) -> Tuple[List[bytes], bytes, bool, int]:
    """The body cut into socket reads, maybe truncated: (pieces, data, truncated, and
    -1, or the data bytes before a size line cut after digits that read as zero)."""
    body, data, lines = draw(chunked_bodies())
    truncated = draw(st.booleans())
    cut = draw(st.integers(0, len(body) - 1)) if truncated else len(body)
    sent = body[:cut]
    splits = sorted(draw(st.lists(st.integers(0, len(sent)), max_size=8)))
    pieces = [sent[a:b] for a, b in zip([0] + splits, splits + [len(sent)]) if b > a]
    zero_cut = -1
    for start, end, before in lines:
        digits = body[start:cut].split(b";", 1)[0].strip()
        if start < cut < end and digits and int(digits, 16) == 0:
            zero_cut = before
    return [HEAD] + pieces, data, truncated, zero_cut


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_our_chunk_reader_gives_the_bytes_urllib3_gives(delivery):
    pieces, data, truncated, zero_cut = delivery
    ours = _run("ours", pieces)
    theirs = _run("urllib3", pieces)
    if zero_cut >= 0:  # the one difference by design (see the module docstring)
        assert ours == (False, data[:zero_cut]) and theirs == (True, data[:zero_cut])
    elif not truncated:
        assert ours == theirs == (True, data)
    else:
        assert ours[0] == theirs[0]  # both complete (cut in the trailers) or both failed
        if ours[0]:
            assert ours[1] == theirs[1] == data
        else:
            # We hand a chunk's bytes on as they arrive; urllib3 only whole chunks.
            assert data.startswith(ours[1]) and ours[1].startswith(theirs[1])


@pytest.mark.parametrize("value, ours", [("urllib3", False), ("URLLIB3 ", False), ("", True), ("llmproviders", True)])
def test_the_environment_variable_switches_to_urllib3s_reader(monkeypatch, emulator_base_url, value, ours):
    used = []
    original = chunked.chunks

    def spy(*args, **kwargs):
        used.append(True)
        return original(*args, **kwargs)

    monkeypatch.setattr(chunked, "chunks", spy)
    monkeypatch.setenv(READER_ENV, value)
    messages = [{"role": "user", "content": "which reader?"}]
    text = GPROChat.create(None, messages, base_url=emulator_base_url, timeout=5)
    assert text.startswith("Вы спросили")
    assert bool(used) is ours


@pytest.fixture
def emulator_base_url(llm_emulator):
    return llm_emulator.base_url
