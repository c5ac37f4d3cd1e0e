"""The suites' view of an Evidence: named logs read, evidence names kept, absence explicit."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.content.from_evidence import (
    content_evidence,
    content_notes,
    known_people,
    proxy_log,
    stimuli,
)
from conformance.evidence.interface import (
    CLOUD_REQUESTS,
    DECRYPTED_REQUESTS,
    KNOWN_PEOPLE,
    STIMULI_LOG,
    Evidence,
)
from conformance.judge import telemetry
from conformance.observe.model import Observations
from conformance.verdict import Verdict
from tests.content.beats import request
from tests.proxy_captures import proxy_profile


def test_a_capture_only_source_has_no_content_level_evidence() -> None:
    evidence = Evidence(Observations(captures=(), flows=()), files=(), source="pcap")
    content = content_evidence(evidence)
    assert not content.available
    assert proxy_log(evidence) is None and stimuli(evidence) is None
    result = telemetry.optout(content, proxy_profile("lab-proxy"), stimuli(evidence))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason.startswith("content-level evidence not available")


def test_logs_keep_their_evidence_names(tmp_path: Path) -> None:
    decrypted = tmp_path / "d.jsonl"
    decrypted.write_text(json.dumps(request("/v1/licensing/poll", {"a": 1})) + "\n")
    people = tmp_path / "people.json"
    people.write_text(json.dumps(["Alice Example"]))
    steps = tmp_path / "stimuli.jsonl"
    steps.write_text(json.dumps({"stimulus": "POST x/actions/restart", "exit": 0}) + "\n")
    evidence = Evidence(
        Observations(captures=(), flows=()),
        files=(
            (decrypted, "lab/decrypted-requests.jsonl"),
            (people, "lab/known-people.json"),
            (steps, "lab/stimuli.jsonl"),
        ),
        logs={DECRYPTED_REQUESTS: decrypted, KNOWN_PEOPLE: people, STIMULI_LOG: steps},
    )
    content = content_evidence(evidence)
    assert content.files == {DECRYPTED_REQUESTS: "lab/decrypted-requests.jsonl"}
    assert content.messages[0].evidence_file == "lab/decrypted-requests.jsonl"
    assert known_people(evidence) == ("Alice Example",)
    assert stimuli(evidence) == [{"stimulus": "POST x/actions/restart", "exit": 0}]


def test_the_report_says_plainly_when_there_is_no_content_level_evidence(tmp_path: Path) -> None:
    bare = Evidence(Observations(captures=(), flows=()), files=(), source="pcap")
    (note,) = content_notes(bare, proxy_profile("lab-proxy"))
    assert note.startswith("content-level evidence not available")
    assert "TM-OPTOUT" in note and "never pass" in note
    air_gapped = proxy_profile("lab-air-gapped")
    assert content_notes(bare, air_gapped) == ()

    cloud = tmp_path / "cloud.jsonl"
    cloud.write_text("")
    decrypted = tmp_path / "decrypted.jsonl"
    decrypted.write_text("")
    only_cloud = Evidence(
        Observations(captures=(), flows=()),
        files=((cloud, "lab/cloud-requests.jsonl"),),
        logs={CLOUD_REQUESTS: cloud},
    )
    (note,) = content_notes(only_cloud, proxy_profile("lab-proxy"))
    assert "lab/cloud-requests.jsonl" in note and "no intercepting proxy" in note
    both = Evidence(
        Observations(captures=(), flows=()),
        files=((decrypted, "lab/decrypted-requests.jsonl"), (cloud, "lab/cloud-requests.jsonl")),
        logs={DECRYPTED_REQUESTS: decrypted, CLOUD_REQUESTS: cloud},
    )
    (note,) = content_notes(both, proxy_profile("lab-proxy"))
    assert "decrypted requests (lab/decrypted-requests.jsonl)" in note
    assert "no intercepting proxy" not in note
