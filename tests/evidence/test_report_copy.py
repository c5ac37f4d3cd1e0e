"""ReportEvidenceSource on the directory `rejudge` makes (a verified copy of a report's
evidence/ with evidence-logs.json beside it): captures in index order, the tables the report
writes itself never handed back, logs found by the report's record or, for reports older
than the record, by their fixed names; a record that is not one is a one-line error."""

from __future__ import annotations

import json
import tempfile
from functools import cache
from pathlib import Path

import pytest

from conformance.errors import CaptureError
from conformance.evidence.interface import (
    CLOUD_REQUESTS,
    PROBE_LOG,
    PROXY_ACCESS_LOG,
    REPORT_GENERATED,
    Collected,
)
from conformance.evidence.report_copy import EVIDENCE, KNOWN_NAMES, LOGS_FILE, ReportEvidenceSource
from conformance.progress import NULL_PROGRESS
from tests.defects import clean_onprem_traffic, defect_profile, tcp_leak, write_pcap, write_pcapng

PROFILE = defect_profile()

# What a lab run's report keeps under evidence/ besides the tables it writes itself.
KEPT = (
    "capture-0.pcapng",
    "capture-1.pcap",
    "capture-2.pcap",
    "capture-10.pcap",
    "lab/capture-impostors.pcapng",  # a log, not a judged capture
    "probes.jsonl",
    "lab/squid-access.log",
    "lab/cloud-requests.jsonl",
    "lab/probes-again.jsonl",
)


@cache
def _capture(pcapng: bool) -> bytes:
    """A small capture's bytes (built once: the source never reads them)."""
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "c"
        if pcapng:
            return write_pcapng(path, clean_onprem_traffic()).read_bytes()
        return write_pcap(path, tcp_leak()).read_bytes()


def rejudge_copy(root: Path, names: tuple[str, ...], logs: object | None) -> Path:
    """The directory `rejudge` hands the run: evidence/ with every name (the tables the
    report wrote among them) and, unless `logs` is None, evidence-logs.json holding `logs`."""
    evidence = root / EVIDENCE
    for name in (*names, *sorted(REPORT_GENERATED)):
        path = evidence / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith((".pcap", ".pcapng")):
            path.write_bytes(_capture(name.endswith(".pcapng")))
        else:
            path.write_text(f"{name}\n")
    if logs is not None:
        (root / LOGS_FILE).write_text(json.dumps(logs))
    return root


def collect(root: Path) -> Collected:
    source = ReportEvidenceSource(root)
    try:
        return source.collect(PROFILE, NULL_PROGRESS)
    finally:
        source.close()


def test_captures_are_judged_in_index_order_and_every_kept_file_handed_back(
    tmp_path: Path,
) -> None:
    root = rejudge_copy(tmp_path, KEPT, {})
    collected = collect(root)
    evidence = root / EVIDENCE
    assert collected.source == "report"
    order = ("capture-0.pcapng", "capture-1.pcap", "capture-2.pcap", "capture-10.pcap")
    assert collected.captures == tuple(evidence / name for name in order)  # 10 after 2
    assert {name for _, name in collected.files} == set(KEPT)
    assert all(path == evidence / name for path, name in collected.files)
    assert all(path.is_file() for path in collected.captures)
    assert collected.notes == (
        f"judged again from the evidence of a signed report ({len(KEPT)} files)",
    )


def test_the_tables_the_report_writes_itself_are_not_inputs(tmp_path: Path) -> None:
    collected = collect(rejudge_copy(tmp_path, ("capture-0.pcap",), {}))
    names = {name for _, name in collected.files}
    assert names == {"capture-0.pcap"}
    assert not names & REPORT_GENERATED
    assert (tmp_path / EVIDENCE / "flows.csv").is_file()  # there, only not handed back


def test_logs_are_found_by_the_reports_own_record(tmp_path: Path) -> None:
    record = {
        PROBE_LOG: f"{EVIDENCE}/lab/probes-again.jsonl",  # not the fixed name probes.jsonl
        PROXY_ACCESS_LOG: f"{EVIDENCE}/lab/squid-access.log",
        "stimuli": f"{EVIDENCE}/lab/stimuli.jsonl",  # recorded, but not in the copy
    }
    root = rejudge_copy(tmp_path, KEPT, record)
    collected = collect(root)
    evidence = root / EVIDENCE
    assert dict(collected.logs) == {
        PROBE_LOG: evidence / "lab/probes-again.jsonl",
        PROXY_ACCESS_LOG: evidence / "lab/squid-access.log",
    }
    # the record is the whole truth: a fixed name it does not list is no log
    assert collected.log(CLOUD_REQUESTS) is None
    assert collected.log("stimuli") is None
    assert collected.log(PROBE_LOG) == evidence / "lab/probes-again.jsonl"


@pytest.mark.parametrize("record", [None, {}], ids=["no-record", "empty-record"])
def test_older_reports_name_their_logs_by_fixed_names(tmp_path: Path, record: object) -> None:
    """Reports written before `evidence_logs` (rejudge then writes `{}`)."""
    names = ("capture-0.pcap", *KNOWN_NAMES)
    root = rejudge_copy(tmp_path, names, record)
    collected = collect(root)
    assert dict(collected.logs) == {
        kind: root / EVIDENCE / name for name, kind in KNOWN_NAMES.items()
    }
    assert root / EVIDENCE / "lab/capture-impostors.pcapng" not in collected.captures


def test_an_older_report_without_some_logs_leaves_them_out(tmp_path: Path) -> None:
    root = rejudge_copy(tmp_path, ("capture-0.pcap", "probes.jsonl"), None)
    assert dict(collect(root).logs) == {PROBE_LOG: root / EVIDENCE / "probes.jsonl"}


@pytest.mark.parametrize(
    "content",
    [
        b"{broken",
        b"",
        b"\xff\xfe{}",
        b'["probes", "evidence/probes.jsonl"]',
        b'{"probes": 3}',
        b'{"probes": null}',
        b"null",
    ],
    ids=["not-json", "empty", "not-utf8", "a-list", "a-number", "a-null-name", "null"],
)
def test_a_malformed_log_record_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    root = rejudge_copy(tmp_path, ("capture-0.pcap", "probes.jsonl"), None)
    (root / LOGS_FILE).write_bytes(content)
    with pytest.raises(CaptureError) as error:
        collect(root)
    message = str(error.value)
    assert message.startswith(f"{root / LOGS_FILE}: not a log record")
    assert "\n" not in message


def test_a_directory_without_evidence_is_not_a_rejudge_copy(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(CaptureError, match=r"no evidence/ directory: not a rejudge copy$") as error:
        ReportEvidenceSource(tmp_path)
    assert str(error.value).startswith(f"{tmp_path}: ")


def test_closing_leaves_the_copy_to_rejudge(tmp_path: Path) -> None:
    root = rejudge_copy(tmp_path, ("capture-0.pcap",), {})
    collect(root)
    assert (root / EVIDENCE / "capture-0.pcap").is_file()
