"""The spill file itself (observe/_spill.pyx): what goes in comes back, whole, once.

test_spill.py checks the facts with the spill forced on; this checks the store under it:
a pair and a lone direction (under either key) come back with every slot as it was, a
record reloaded is gone (not listed, not found again), keys whose slots collide stay
apart, records on both sides of the write buffer's flushes read back alike, and `live`
lists what is left as FlowTable.finish lists the table's directions.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.decode import compiled
from conformance.decode.classify import PayloadKind
from conformance.observe.flows import (
    BYTES,
    CARRIED,
    DIRS,
    HEAD,
    ISN,
    KIND,
    N_FIRST,
    PAYLOAD_N,
    PKTS,
    RSTS,
    TCP_FLAGS,
    TCP_OPEN,
    WANT,
    reverse_key,
)

_SPILL: Any = compiled.load("conformance.observe._spill")
_STEP: Any = compiled.load(compiled.MODULES[1])

pytestmark = pytest.mark.skipif(_SPILL is None or _STEP is None, reason="not built")


def _key(n: int, v6: bool = False) -> bytes:
    """A direction key: client n -> a server, port 443."""
    ports = struct.pack("!HH", 1024 + n, 443)
    if v6:
        return (
            b"\x20\x01\x0d\xb8"
            + n.to_bytes(12, "big")
            + b"\x20\x01\x0d\xb8"
            + bytes(11)
            + b"\x01"
            + ports
        )
    return bytes((192, 0, 2, n % 250 + 1, 198, 51, 100, 7)) + ports


def _entry(n: int, head: bytes | None = b"\x16\x03\x01\x02\x00") -> Any:
    e = _STEP.new_entry(1_700_000_000.0 + n, 10 * n + 1, 5)
    e[PKTS] = 3 + n
    e[BYTES] = 1500 * n + 7
    e[TCP_FLAGS] = 0x1B
    e[TCP_OPEN] = 1
    e[RSTS] = n % 3
    e[DIRS] = 2
    e[KIND] = PayloadKind.TLS
    e[PAYLOAD_N] = 10 * n + 4
    e[HEAD] = head
    e[ISN] = (n * 7919).to_bytes(4, "big")
    for packet in range(10 * n + 1, 10 * n + 1 + n % 12):
        e.add_sample(packet)
    return e


def _slots(e: Any) -> list[object]:
    return [e[i] for i in range(CARRIED + 1)]


def test_a_pair_comes_back_whole_under_either_key_and_only_once() -> None:
    spill = _SPILL.Spill()
    key = _key(5)
    rkey = reverse_key(key)
    ref, other = (key, rkey) if key < rkey else (rkey, key)
    a, b = _entry(5), _entry(6, head=None)
    spill.put(ref, a, b)
    table: dict[bytes, Any] = {}
    assert spill.reload(table, other) is True
    assert set(table) == {ref, other}
    assert _slots(table[ref]) == _slots(a) and _slots(table[other]) == _slots(b)
    assert spill.reload(table, ref) is False and spill.count == 0
    assert list(spill.live()) == []
    spill.close()


@pytest.mark.parametrize("v6", [False, True])
def test_a_lone_direction_is_listed_under_its_own_key(v6: bool) -> None:
    spill = _SPILL.Spill()
    key = _key(9, v6)
    rkey = reverse_key(key)
    e = _entry(9)
    if key < rkey:
        spill.put(key, e, None)
    else:
        spill.put(rkey, None, e)
    [(listed, first, offset, final)] = list(spill.live())
    assert final is False
    assert listed == key and first == 91
    loaded, none = spill.load(offset)
    assert none is None and _slots(loaded) == _slots(e)
    table: dict[bytes, Any] = {}
    assert spill.reload(table, rkey) is True and list(table) == [key]
    spill.close()


def test_many_records_across_flushes_and_growth_come_back_in_file_order() -> None:
    spill = _SPILL.Spill()
    made = {}
    for n in range(12_000):  # ~2.5 MB: the write buffer goes to the file twice
        key = _key(n)
        rkey = reverse_key(key)
        ref = min(key, rkey)
        made[ref] = (_entry(n), _entry(n + 1) if n % 4 else None)
        spill.put(ref, *made[ref])
    live = list(spill.live())
    assert [k for k, _, _, _ in live] == list(made)  # each under its reference key, in order
    for ref, first, offset, _ in live[::997]:
        a, b = made[ref]
        assert first == a[N_FIRST]
        got_a, got_b = spill.load(offset)
        assert _slots(got_a) == _slots(a)
        assert (got_b is None) == (b is None) and (b is None or _slots(got_b) == _slots(b))
    table: dict[bytes, Any] = {}
    gone = [ref for i, ref in enumerate(made) if i % 3 == 0]
    for ref in gone:
        assert spill.reload(table, reverse_key(ref)) is True
    assert spill.count == len(made) - len(gone)
    left = {k for k, _, _, _ in spill.live()}
    assert left == set(made) - set(gone)
    for ref in gone:  # reloaded: found no more
        assert spill.reload({}, ref) is False
    spill.close()


def test_records_read_back_in_any_order_through_the_windows() -> None:
    """The build reads records in packet order, not file order: through the few windows of
    the file every record comes back whole in any order (forward, backward, shuffled,
    jumping between far parts of the file), and a reload's mark reaches a window holding it."""
    spill = _SPILL.Spill()
    made = {}
    for n in range(12_000):
        ref = min(_key(n), reverse_key(_key(n)))
        made[ref] = (_entry(n), _entry(n + 1) if n % 4 else None)
        spill.put(ref, *made[ref])
    packed, key_at, firsts, offsets, finals = spill.listing()
    # The keys packed one after another, no object a record (#17: a scan's build).
    assert isinstance(packed, bytearray) and len(key_at) == len(firsts) + 1
    keys = [bytes(packed[key_at[i] : key_at[i + 1]]) for i in range(len(firsts))]
    assert keys == list(made) and finals == bytes(len(made))
    assert list(firsts) == [made[k][0][N_FIRST] for k in keys]
    order = list(range(len(keys)))
    half = len(order) // 2
    jumping = [i for pair in zip(order[:half], order[::-1][:half], strict=True) for i in pair]
    shuffled = order[7::13] + order[3::13] + order[::13] + order[1::13]
    for sequence in (order, order[::-1], jumping, shuffled):
        for i in sequence:
            a, b = made[keys[i]]
            got_a, got_b = spill.load(offsets[i])
            assert _slots(got_a) == _slots(a)
            assert (got_b is None) == (b is None) and (b is None or _slots(got_b) == _slots(b))
    gone = set(keys[::5])
    for ref in gone:
        assert spill.reload({}, ref) is True
    packed, key_at, _, left_offsets, _ = spill.listing()
    left = [bytes(packed[key_at[i] : key_at[i + 1]]) for i in range(len(left_offsets))]
    assert left == [k for k in keys if k not in gone]
    for ref, offset in zip(left, left_offsets, strict=True):
        assert _slots(spill.load(offset)[0]) == _slots(made[ref][0])
    spill.close()


def test_a_key_never_spilled_is_not_found_among_many() -> None:
    spill = _SPILL.Spill()
    for n in range(3000):
        key = _key(n)
        spill.put(min(key, reverse_key(key)), _entry(n), None)
    assert not any(spill.reload({}, _key(n, v6=True)) for n in range(3000))
    assert spill.count == 3000
    spill.close()


def test_an_entry_with_rare_state_is_refused() -> None:
    spill = _SPILL.Spill()
    e = _entry(1)
    e[CARRIED] = ("vxlan", 2)  # Entry.rare: the step never spills it
    with pytest.raises(ValueError, match="rare"):
        spill.put(_key(1), e, None)
    spill.close()


def test_want_is_kept() -> None:
    spill = _SPILL.Spill()
    e = _entry(2)
    e[WANT] = 0x35
    spill.put(min(_key(2), reverse_key(_key(2))), e, None)
    table: dict[bytes, Any] = {}
    spill.reload(table, _key(2))
    assert table[_key(2)][WANT] == 0x35
    spill.close()


def test_a_retired_connection_is_listed_under_its_key_and_never_reloaded() -> None:
    spill = _SPILL.Spill()
    key = _key(7)
    larger = max(key, reverse_key(key))  # not the reference key: kept as given
    e, other = _entry(7), _entry(8)
    spill.put(larger, e, other, True)
    assert spill.reload({}, larger) is False and spill.count == 0 and spill.finals == 1
    [(listed, first, offset, final)] = list(spill.live())
    assert (listed, first, final) == (larger, 71, True)
    got_e, got_other = spill.load(offset)
    assert _slots(got_e) == _slots(e) and _slots(got_other) == _slots(other)
    spill.close()


_FULL_DISK = """
import resource, signal, struct, sys
sys.path.insert(0, sys.argv[1])
from tests.observe.test_spill_file import _SPILL, _entry, _key, _slots
from conformance.observe.flows import reverse_key
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
spill = _SPILL.Spill()
made = {}
for n in range(12_000):
    key = _key(n)
    ref = min(key, reverse_key(key))
    made[ref] = (_entry(n), None)
    spill.put(ref, *made[ref])
table = {}
assert all(spill.reload(table, ref) for ref in list(made)[::5])
live = list(spill.live())
assert len(live) == len(made) - len(table), (len(live), len(made), len(table))
for ref, first, offset, final in live[::101]:
    assert _slots(spill.load(offset)[0]) == _slots(made[ref][0])
print("ok")
"""


def test_a_full_disk_keeps_the_rest_in_memory(tmp_path: Path) -> None:
    """The file stops taking records at 1 MiB (RLIMIT_FSIZE): what follows stays in the
    buffer, and every record still reads back."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
