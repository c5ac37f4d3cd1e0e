"""Where things sit inside a report directory: the evidence folder and flows.csv rows."""

from __future__ import annotations

EVIDENCE_DIR = "evidence"
FLOWS_CSV = f"{EVIDENCE_DIR}/flows.csv"


def flow_link(flow_id: int) -> str:
    """Where flow N is: line N+1 of flows.csv (the header is line 1)."""
    return f"{FLOWS_CSV}#L{flow_id + 1}"
