"""The one observe step: every kind of evidence a source collected, read into Observations,
with evidence names kept and absence explicit (None, never an empty stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.evidence.interface import (
    CLOUD_REQUESTS,
    DECRYPTED_REQUESTS,
    ENDPOINT_SCAN,
    IMPOSTOR_CAPTURE,
    IMPOSTOR_LOG,
    KNOWN_PEOPLE,
    PROBE_LOG,
    PROXY_ACCESS_LOG,
    STIMULI_LOG,
    CaptureLoss,
    Collected,
)
from conformance.judge import telemetry
from conformance.judge.telemetry import content_notes
from conformance.observe.evidence import observe_evidence
from conformance.observe.records import Observations
from conformance.verdict import Verdict
from tests.capture_files import write_pcap
from tests.content.beats import request
from tests.proxy_captures import proxy_profile

PROFILE = proxy_profile("lab-proxy")


def observe(collected: Collected, tmp_path: Path) -> Observations:
    return observe_evidence(collected, PROFILE, tmp_path / "work").observations


def test_a_capture_only_source_has_no_other_evidence(tmp_path: Path) -> None:
    obs = observe(Collected(source="pcap"), tmp_path)
    assert obs.source == "pcap"
    for kind in ("probes", "proxy_log", "content", "impostors", "endpoint_scan", "host"):
        assert getattr(obs, kind) is None, kind
    assert obs.stimuli is None and obs.known_people == ()
    result = telemetry.optout(obs, PROFILE)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason.startswith("content-level evidence not available")


def test_logs_keep_their_evidence_names(tmp_path: Path) -> None:
    decrypted = tmp_path / "d.jsonl"
    decrypted.write_text(json.dumps(request("/v1/licensing/poll", {"a": 1})) + "\n")
    people = tmp_path / "people.json"
    people.write_text(json.dumps(["Alice Example", 3]))
    steps = tmp_path / "stimuli.jsonl"
    steps.write_text(json.dumps({"stimulus": "POST x/actions/restart", "exit": 0}) + "\nnot json\n")
    probes = tmp_path / "probes.jsonl"
    probes.write_text('{"probe": "tcp-443"}\n{"other": 1}\n')
    access = tmp_path / "access.log"
    access.write_text(
        "1795417103.688 107 192.0.2.10 TCP_TUNNEL/200 1507 CONNECT api.imagicle.com:443 -"
        " HIER_DIRECT/198.51.100.10 -\ngarbage\n"
    )
    scan = tmp_path / "scan.json"
    scan.write_text("{broken")
    obs = observe(
        Collected(
            source="lab",
            files=(
                (decrypted, "lab/decrypted-requests.jsonl"),
                (people, "lab/known-people.json"),
                (steps, "lab/stimuli.jsonl"),
                (probes, "lab/probes.jsonl"),
                (access, "lab/squid-access.log"),
                (scan, "lab/endpoint-scan.json"),
            ),
            logs={
                DECRYPTED_REQUESTS: decrypted,
                KNOWN_PEOPLE: people,
                STIMULI_LOG: steps,
                PROBE_LOG: probes,
                PROXY_ACCESS_LOG: access,
                ENDPOINT_SCAN: scan,
            },
        ),
        tmp_path,
    )
    assert obs.content is not None
    assert obs.content.files == {DECRYPTED_REQUESTS: "lab/decrypted-requests.jsonl"}
    assert obs.content.messages[0].evidence_file == "lab/decrypted-requests.jsonl"
    assert obs.known_people == ("Alice Example",)
    assert obs.stimuli is not None and obs.stimuli.evidence_file == "lab/stimuli.jsonl"
    assert obs.stimuli.records == ((1, {"stimulus": "POST x/actions/restart", "exit": 0}),)
    assert obs.stimuli.unreadable == (2,)
    assert obs.probes is not None and [n for n, _ in obs.probes.records] == [1]
    assert obs.probes.unreadable == (2,)  # a record without "probe" is not a probe
    assert obs.proxy_log is not None and obs.proxy_log.evidence_file == "lab/squid-access.log"
    assert [e.hierarchy for e in obs.proxy_log.entries] == ["HIER_DIRECT/198.51.100.10"]
    assert obs.proxy_log.unreadable == (2,)
    assert obs.endpoint_scan is not None and obs.endpoint_scan.error is not None


def test_the_impostor_phase_capture_is_observed_or_says_why_not(tmp_path: Path) -> None:
    log = tmp_path / "impostors.jsonl"
    log.write_text('{"kind": "expired", "client": "192.0.2.10:40000"}\n')
    missing = observe(
        Collected(source="lab", files=((log, "lab/impostors.jsonl"),), logs={IMPOSTOR_LOG: log}),
        tmp_path,
    )
    assert missing.impostors is not None and missing.impostors.capture is None
    assert missing.impostors.capture_error == "the impostor phase's capture is missing"
    capture = write_pcap(tmp_path / "phase.pcap", [])
    seen = observe(
        Collected(
            source="lab",
            files=((log, "lab/impostors.jsonl"), (capture, "lab/capture-impostors.pcap")),
            logs={IMPOSTOR_LOG: log, IMPOSTOR_CAPTURE: capture},
        ),
        tmp_path,
    )
    assert seen.impostors is not None and seen.impostors.capture is not None
    assert seen.impostors.capture_file == "lab/capture-impostors.pcap"


def test_a_capture_tools_own_loss_count_joins_the_capture(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "c.pcap", [])
    obs = observe(
        Collected(
            source="host-capture",
            captures=(capture, capture),
            capture_loss={0: CaptureLoss(7, "tcpdump: 7 lost"), 1: CaptureLoss(None, "killed")},
        ),
        tmp_path,
    )
    first, second = obs.captures
    assert (first.drops, first.drop_detail) == (7, "tcpdump: 7 lost")
    assert second.truncated_file and second.truncated_detail == "killed"


def test_the_report_says_plainly_when_there_is_no_content_level_evidence(tmp_path: Path) -> None:
    bare = observe(Collected(source="pcap"), tmp_path)
    (note,) = content_notes(bare, PROFILE)
    assert note.startswith("content-level evidence not available")
    assert "TM-OPTOUT" in note and "never pass" in note
    assert content_notes(bare, proxy_profile("lab-air-gapped")) == ()

    cloud = tmp_path / "cloud.jsonl"
    cloud.write_text("")
    decrypted = tmp_path / "decrypted.jsonl"
    decrypted.write_text("")
    only_cloud = observe(
        Collected(
            source="lab",
            files=((cloud, "lab/cloud-requests.jsonl"),),
            logs={CLOUD_REQUESTS: cloud},
        ),
        tmp_path,
    )
    (note,) = content_notes(only_cloud, PROFILE)
    assert "lab/cloud-requests.jsonl" in note and "no intercepting proxy" in note
    both = observe(
        Collected(
            source="lab",
            files=(
                (decrypted, "lab/decrypted-requests.jsonl"),
                (cloud, "lab/cloud-requests.jsonl"),
            ),
            logs={DECRYPTED_REQUESTS: decrypted, CLOUD_REQUESTS: cloud},
        ),
        tmp_path,
    )
    (note,) = content_notes(both, PROFILE)
    assert "decrypted requests (lab/decrypted-requests.jsonl)" in note
    assert "no intercepting proxy" not in note
