"""TM-OPTOUT, TM-MINIMAL and TM-CHANNEL judged on the customer's own evidence: real TLS sessions
(Python's ssl, HTTP/1.1 and HTTP/2) in a capture, decrypted by tshark with the key log the
client wrote, through a pcapng Decryption Secrets Block, and through an intercepting proxy's
HAR; and the redacted messages the report keeps give the same verdicts on their own."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.evidence.interface import HAR_CONTENT, TLS_DECRYPTED, Collected
from conformance.evidence.pcap import PcapSource
from conformance.observe.evidence import kept_logs, observe_evidence
from tests.content.beats import beat
from tests.content.own_captures import (
    OFF,
    ON,
    STIMULI,
    Gathered,
    collect,
    judge,
    site,
    verdicts,
)

Gather = Callable[..., Gathered]

PII = ("Mario Rossi", "mario.rossi@example.com", "+39 0584 943232")


@pytest.fixture
def gather() -> Iterator[Callable[..., Gathered]]:
    """`collect` whose sources are closed (their work files removed) after the test."""
    opened: list[PcapSource] = []

    def run(*args: Any, **kwargs: Any) -> Gathered:
        evidence, source = collect(*args, **kwargs)
        opened.append(source)
        return evidence

    yield run
    for source in opened:
        source.close()


def test_telemetry_off_and_no_beat_passes(tmp_path: Path, gather: Gather) -> None:
    built = site(tmp_path)
    evidence = gather([built.capture], OFF, keylogs=[built.keylog])
    result = judge(evidence, OFF, STIMULI)["TM-OPTOUT"]
    assert result.verdict.value == "pass", result
    assert "2 messages recorded" in result.reason


@pytest.mark.parametrize(("h2_beats", "proxy"), [(False, False), (True, False), (True, True)])
def test_a_beat_despite_the_opt_out_fails(
    tmp_path: Path, h2_beats: bool, proxy: bool, gather: Gather
) -> None:
    built = site(tmp_path, [beat()], h2_beats=h2_beats, proxy=proxy)
    evidence = gather([built.capture], OFF, keylogs=[built.keylog])
    result = judge(evidence, OFF, STIMULI)["TM-OPTOUT"]
    assert result.verdict.value == "fail", result
    (finding,) = result.violations
    assert finding.evidence_file == "content/tls-decrypted.jsonl"
    assert "POST api.imagicle.com:443/v1/telemetry/beat (TLSv1.3)" in finding.summary
    assert finding.facts["source"] == TLS_DECRYPTED


def test_an_undocumented_field_and_an_email_fail_minimal(tmp_path: Path, gather: Gather) -> None:
    built = site(tmp_path, [beat("undocumented-telemetry-field", "pii-in-telemetry")])
    evidence = gather([built.capture], ON, keylogs=[built.keylog])
    results = judge(evidence, ON)
    minimal = results["TM-MINIMAL"]
    assert minimal.verdict.value == "fail", minimal
    summaries = " ".join(f.summary for f in minimal.violations)
    assert "undocumented field recent_calls" in summaries
    assert "personal data (e-mail address) at ucx_suite.attendant_console" in summaries
    assert results["TM-CHANNEL"].verdict.value == "pass"
    kept = evidence.log(TLS_DECRYPTED)
    assert kept is not None
    text = kept.read_text()
    assert not any(value in text for value in PII), "the kept messages carry personal data"
    assert "[redacted:email]" in text and "[redacted:name]" in text


def test_clean_beats_pass_minimal_and_channel(tmp_path: Path, gather: Gather) -> None:
    built = site(tmp_path, [beat(), beat()], h2_beats=True)
    evidence = gather([built.capture], ON, keylogs=[built.keylog])
    assert verdicts(judge(evidence, ON)) == {"TM-MINIMAL": "pass", "TM-CHANNEL": "pass"}


def test_a_session_without_keys_is_inconclusive_and_named(tmp_path: Path, gather: Gather) -> None:
    built = site(tmp_path, [beat()], unkeyed=[beat()])
    evidence = gather([built.capture], ON, keylogs=[built.keylog])
    results = judge(evidence, ON)
    assert verdicts(results) == {"TM-MINIMAL": "inconclusive", "TM-CHANNEL": "inconclusive"}
    reason = results["TM-MINIMAL"].reason
    assert "1 TLS connections of the target leaving the Customer Environment" in reason
    assert "flow 4 192.0.2.10:50003 -> 198.51.100.7:443 (SNI api.imagicle.com)" in reason
    assert "no key for its client random" in reason
    assert any("not decrypted: flow 4" in note for note in evidence.notes)


def test_a_leak_is_a_fail_even_when_a_session_has_no_keys(tmp_path: Path, gather: Gather) -> None:
    built = site(tmp_path, [beat("pii-in-telemetry")], unkeyed=[beat()])
    evidence = gather([built.capture], ON, keylogs=[built.keylog])
    assert judge(evidence, ON)["TM-MINIMAL"].verdict.value == "fail"


def test_the_same_capture_through_a_dsb_pcapng(tmp_path: Path, gather: Gather) -> None:
    built = site(tmp_path, [beat("undocumented-telemetry-field")], unkeyed=[beat()])
    plain = gather([built.capture], ON, keylogs=[built.keylog])
    with_secrets = built.with_secrets(tmp_path / "with-secrets.pcapng")
    evidence, source = collect([with_secrets], ON)
    assert verdicts(judge(evidence, ON)) == verdicts(judge(plain, ON))
    assert verdicts(judge(evidence, ON))["TM-MINIMAL"] == "fail"
    judged = source.paths[0]
    assert judged != with_secrets and b"CLIENT_TRAFFIC_SECRET_0" not in judged.read_bytes()
    assert b"CLIENT_TRAFFIC_SECRET_0" in with_secrets.read_bytes()
    assert any("Decryption Secrets Blocks" in n and "removed" in n for n in evidence.notes)
    source.close()
    assert not judged.exists()


def test_the_same_capture_through_a_har(tmp_path: Path, gather: Gather) -> None:
    built = site(tmp_path, [beat("pii-in-telemetry")], h2_beats=True)
    keyed = gather([built.capture], ON, keylogs=[built.keylog])
    har = built.har(tmp_path / "proxy.har")
    evidence = gather([built.capture], ON, hars=[har])
    results = judge(evidence, ON)
    assert (
        verdicts(results)
        == verdicts(judge(keyed, ON))
        == {
            "TM-MINIMAL": "fail",
            "TM-CHANNEL": "pass",
        }
    )
    assert {f.evidence_file for f in results["TM-MINIMAL"].violations} == {
        "content/har-messages.jsonl"
    }
    assert evidence.log(HAR_CONTENT) is not None and evidence.log(TLS_DECRYPTED) is None


def test_a_har_that_misses_a_connection_is_inconclusive(tmp_path: Path, gather: Gather) -> None:
    built = site(tmp_path, [beat()])
    har = built.har(tmp_path / "partial.har", only=[0, 1])
    evidence = gather([built.capture], ON, hars=[har])
    results = judge(evidence, ON)
    assert verdicts(results) == {"TM-MINIMAL": "inconclusive", "TM-CHANNEL": "inconclusive"}
    assert "no HAR entry explains it" in results["TM-MINIMAL"].reason
    assert "flow 3 " in results["TM-MINIMAL"].reason


def test_a_har_fills_what_the_keys_miss(tmp_path: Path, gather: Gather) -> None:
    """A connection is covered when any source covers it: keys for two, the HAR for the
    unkeyed one."""
    built = site(tmp_path, [beat()], unkeyed=[beat()])
    har = built.har(tmp_path / "proxy.har", only=[3])
    evidence = gather([built.capture], ON, keylogs=[built.keylog], hars=[har])
    assert verdicts(judge(evidence, ON)) == {"TM-MINIMAL": "pass", "TM-CHANNEL": "pass"}


@pytest.mark.parametrize("faults", [("pii-in-telemetry",), ("undocumented-telemetry-field",), ()])
def test_the_kept_redacted_messages_alone_give_the_same_verdicts(
    tmp_path: Path, faults: tuple[str, ...], gather: Gather
) -> None:
    """What `rejudge` reads: the report's content/tls-decrypted.jsonl, without capture or keys."""
    built = site(tmp_path, [beat(*faults)], unkeyed=[beat()] if not faults else [])
    evidence = gather([built.capture], ON, keylogs=[built.keylog])
    kept = evidence.log(TLS_DECRYPTED)
    assert kept is not None
    evidence_dir = tmp_path / "report" / "evidence"
    copy = evidence_dir / "content" / "tls-decrypted.jsonl"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(kept, copy)
    logs = kept_logs(evidence_dir)
    assert logs == {TLS_DECRYPTED: copy}
    kept_only = Collected(
        source="report", files=((copy, "content/tls-decrypted.jsonl"),), logs=logs
    )
    alone = observe_evidence(kept_only, ON, tmp_path / "work").observations
    original, again = judge(evidence, ON), judge(alone, ON)
    assert verdicts(again) == verdicts(original)
    for control in original:
        assert [f.summary for f in again[control].violations] == [
            f.summary for f in original[control].violations
        ]


def test_grpc_and_http2_messages_are_decoded(tmp_path: Path, gather: Gather) -> None:
    built = site(tmp_path, [beat()], h2_beats=True, proxy=True)
    evidence = gather([built.capture], ON, keylogs=[built.keylog])
    assert evidence.observations.content is not None
    messages = evidence.observations.content.messages
    described = {m.describe() for m in messages}
    assert "POST grpc.imagicle.com:443/imagicle.presence.v1.Presence/Subscribe (TLSv1.3)" in (
        described
    )
    presence = next(m for m in messages if "Presence" in m.path)
    assert presence.body == [{"subscribe": "presence"}]  # one gRPC message, JSON
    assert all(m.client == "192.0.2.10" and m.sni for m in messages)
