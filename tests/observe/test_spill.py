"""Closed connections spilled out of the flow table change no fact (#17, observe/_spill.pyx).

The compiled step moves TCP connections that ended from the table to a scratch file and
brings one back when a later packet of it comes (the last ACK, a retransmission, a SYN on
the same 5-tuple, an ICMP error quoting it, the same connection inside a tunnel). Here the
spill is forced on every packet (looked for after each one, with no quiet time), so nearly
every connection leaves and most come back, and the differential fuzz's captures
(tests/observe/test_step_differential.py) must still be observed exactly as the pure-Python
step, which never spills, observes them. The hellos' flow references go to their file after
every hello meanwhile (flows.FlowRefs), in both steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.observe import flows
from tests.compiled_paths import COMPILED_FLOWS, COMPILED_STEP
from tests.observe.test_step_differential import check_case

CASES = 600
CHUNKS = 4

pytestmark = pytest.mark.skipif(
    not (COMPILED_STEP and COMPILED_FLOWS), reason="the spill is the compiled step's"
)


@pytest.fixture
def forced_spill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows, "SPILL_SWEEP_PACKETS", 1)
    monkeypatch.setattr(flows, "SPILL_QUIET_PACKETS", 0)
    monkeypatch.setattr(flows, "SPILL_FROM_DIRECTIONS", 0)
    # and the hellos' flow references to their file after each one (flows.FlowRefs.flush)
    monkeypatch.setattr(flows, "REFS_FLUSH_BYTES", 1)


@pytest.mark.parametrize("chunk", range(CHUNKS))
@pytest.mark.usefixtures("forced_spill")
def test_a_forced_spill_changes_no_fact(chunk: int, tmp_path: Path) -> None:
    from conformance.observe import _spill  # type: ignore[attr-defined]

    before = dict(_spill.TOTALS)
    failures = [
        found for case in range(chunk, CASES, CHUNKS) if (found := check_case(case, tmp_path))
    ]
    assert not failures, f"{len(failures)} cases differ; the first:\n" + failures[0]
    # Not toothless: connections left the table, and some came back.
    assert _spill.TOTALS["spilled"] > before["spilled"]
    assert _spill.TOTALS["reloaded"] > before["reloaded"]
