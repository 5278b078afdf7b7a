"""The emulator keeps streaming on connections whose descriptor is 1024 or more (a
process with 1,000 streams and the emulator in it has over 2,000 descriptors)."""

import os
import resource

from llmproviders import Ylokh
from llmproviders.testing import Emulator, reply_for

MESSAGES = [{"role": "user", "content": "Привет, как дела?"}]


def test_a_paced_reply_on_a_descriptor_above_1024_is_not_cut():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard), hard))
    fillers = [open(os.devnull, "rb") for _ in range(1100)]  # what is opened next is above 1024
    try:
        assert fillers[-1].fileno() >= 1024
        with Emulator(pace=0.01) as emulator:
            text = Ylokh.create(None, MESSAGES, base_url=emulator.base_url, timeout=5, max_retries=0)
            # select() cannot watch such a descriptor: the emulator took that for a client gone
            assert [request.wait() for request in emulator.requests] == ["complete"]
    finally:
        for filler in fillers:
            filler.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert text == reply_for(MESSAGES)
