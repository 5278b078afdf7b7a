"""Frames decode the same with orjson (the speedups extra) and with the standard
library: the tests that read frames run once more, in a fresh interpreter, with
``LLMPROVIDERS_JSON=json``; and values orjson refuses fall back to the standard library."""

import json
import os
import subprocess
import sys

import pytest

from llmproviders import _framing

FRAME_TESTS = [
    "tests/unit/test_framing.py",
    "tests/unit/test_openai_dialects.py",
    "tests/unit/test_openai_compatible.py",
    "tests/unit/test_providers.py",
    "tests/unit/test_big_events.py",
    "tests/unit/test_hostile_frames.py",
]


def test_orjson_is_the_decoder_where_it_is_installed():
    import orjson  # the test extra installs it: missing, this fails rather than skips
    assert _framing.decoder() is orjson.loads


def test_frame_tests_pass_with_the_standard_library_decoder():
    env = {**os.environ, "LLMPROVIDERS_JSON": "json"}
    check = "from llmproviders import _framing; import json; assert _framing.decoder() is json.loads"
    subprocess.run([sys.executable, "-c", check], env=env, check=True, timeout=60)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *FRAME_TESTS],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize(
    "line",
    [b'{"v": NaN}', b'{"v": "\\ud800"}', b'{"a": 1, "a": 2}', b'{"v": 18446744073709551615}'],
)
def test_values_orjson_refuses_decode_as_the_standard_library_does(line):
    (value,) = list(_framing.iter_ndjson(iter([line + b"\n"]), provider="P"))
    expected = json.loads(line)
    assert repr(value) == repr(expected)


def test_the_one_documented_difference_integers_beyond_64_bits():
    """orjson reads an integer beyond 64 bits as a float (no LLM server sends one); the
    README says so. With the standard library it stays an int."""
    import orjson  # the test extra installs it: missing, this fails rather than skips

    assert _framing.decoder() is orjson.loads
    (value,) = list(_framing.iter_ndjson(iter([b'{"v": 123456789012345678901234567890}\n']), provider="P"))
    assert value == {"v": 1.2345678901234568e29}
