"""The compiled step's `initial_want` (observe/_step.pyx) is payloads.initial_want: a new
direction's payload inspection decided in C from its ports, for every port either protocol's
rules name and ports around them."""

from __future__ import annotations

import itertools

import pytest

from conformance.decode import compiled
from conformance.decode.ip import IPPROTO_TCP, IPPROTO_UDP
from conformance.decode.tunnel import TUNNEL_UDP_PORTS
from conformance.observe import payloads
from tests.compiled_paths import COMPILED_STEP

_NAMED = {*payloads.DNS_PORTS, *TUNNEL_UDP_PORTS, payloads.NBNS_PORT, payloads.SSDP_PORT}
_PORTS = sorted({0, 1, 443, 8443, 65535, *(p + d for p in _NAMED for d in (-1, 0, 1, 256))})


@pytest.mark.skipif(not COMPILED_STEP, reason="the compiled step is not built")
@pytest.mark.parametrize("proto", [IPPROTO_TCP, IPPROTO_UDP])
def test_compiled_initial_want_is_the_python_one(proto: int) -> None:
    step = compiled.load(compiled.MODULES[1])
    assert step is not None
    for half, (sport, dport) in itertools.product((4, 16), itertools.product(_PORTS, repeat=2)):
        key = bytes(2 * half) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
        assert step.initial_want(proto, key) == payloads.initial_want(proto, key), (sport, dport)
