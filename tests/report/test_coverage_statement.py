"""The coverage statement as the report shows it: report.json `coverage` and its sentences."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from conformance.observe.coverage import (
    BackwardStep,
    CaptureCoverage,
    Coverage,
    FlowExample,
    FlowSet,
    HiddenNames,
    Silence,
    Unread,
    coverage_of,
)
from conformance.report.coverage_statement import (
    INFO,
    WARNING,
    Statement,
    coverage_section,
    coverage_statements,
    report_warnings,
)
from conformance.report.json_report import json_bytes, jsonable
from tests.judge.factory import T0, Scenario, capture

PATHS = ("evidence/capture-0.pcapng", "evidence/capture-1.pcap")


def _capture(index: int = 0, **changes: object) -> CaptureCoverage:
    base = CaptureCoverage(
        capture=index,
        path=f"/caps/{index}.pcapng",
        start=T0,
        end=T0 + 7200,
        packets=720_000,
        drops=0,
        drop_detail=None,
        truncated=False,
        truncated_detail=None,
        snap_truncated=0,
        silence_count=0,
        silence_seconds=0.0,
        silences=(),
        backward_count=0,
        backward=(),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _coverage(*captures: CaptureCoverage, **changes: object) -> Coverage:
    none = FlowSet(0, 0, ())
    base = Coverage(
        start=T0,
        end=T0 + 7200,
        seconds=7200.0,
        minimum_window_seconds=None,
        captures=captures or (_capture(),),
        one_sided_tcp=none,
        not_understood=(),
        hidden=HiddenNames(none, none, none, none),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _said(coverage: Coverage) -> list[Statement]:
    return list(coverage_statements(coverage, PATHS))


def _texts(coverage: Coverage, severity: str = WARNING) -> list[str]:
    return [s.text for s in _said(coverage) if s.severity == severity]


def test_a_long_clean_window_warns_of_nothing() -> None:
    said = _said(_coverage())
    assert [(s.topic, s.severity) for s in said] == [("window", INFO)]
    assert said[0].text == (
        "The captures cover 2 h, from 2023-11-14 22:13:20 UTC to 2023-11-15 00:13:20 UTC."
    )
    assert said[0].evidence == ("evidence/capture-0.pcapng",)


def test_short_window_without_a_minimum_warns() -> None:
    (text,) = _texts(_coverage(end=T0 + 600, seconds=600.0))
    assert text.startswith("The captures cover only 10 min (from 2023-11-14 22:13:20 UTC to")
    assert "under 1 h: anything the installation does less often" in text


def test_window_under_the_profiles_minimum_says_absence_is_not_proven() -> None:
    (text,) = _texts(_coverage(seconds=7200.0, minimum_window_seconds=86400.0))
    assert "less than the 24 h this deployment's profile asks for" in text
    assert "no promise that something never happens can be proven" in text
    section = coverage_section(_coverage(seconds=7200.0, minimum_window_seconds=86400.0), PATHS)
    assert section["window"]["absence_inconclusive"] is True
    assert section["window"]["minimum_seconds"] == 86400.0


def test_captures_far_apart_say_what_between_them_was_not_seen() -> None:
    first = _capture(0, end=T0 + 3600)
    second = _capture(1, start=T0 + 86400, end=T0 + 90000)
    text = _texts(_coverage(first, second, end=T0 + 90000, seconds=7200.0))
    assert "The 2 captures span 1 day 1 h" not in " ".join(text)  # hours, not days
    assert (
        "The 2 captures span 25 h but cover only 2 h: nothing between them was seen, and their"
        " silences (no packet for over 1 min) are not counted." in text
    )


def test_a_silence_inside_one_capture_is_said_as_such() -> None:
    late = _capture(0, end=T0 + 7200)
    text = _texts(_coverage(late, end=T0 + 7200, seconds=2.0))
    assert (
        "The capture spans 2 h but covers only 2 s: its silences (no packet for over 1 min)"
        " are not counted." in text
    )


def test_losses_each_get_a_sentence_naming_the_file() -> None:
    lossy = _capture(
        drops=12,
        drop_detail="ifdrop 12",
        truncated=True,
        truncated_detail="file ends inside record 9",
        snap_truncated=3,
    )
    text = _texts(_coverage(lossy))
    assert text == [
        "capture-0.pcapng: the capturing interface or kernel dropped 12 packets (ifdrop 12);"
        " they were never seen.",
        "capture-0.pcapng ends in the middle of a packet (file ends inside record 9): whatever"
        " came after is missing.",
        "capture-0.pcapng: 3 packets were cut short when captured (snap length): a name or"
        " request in the missing part was not seen.",
    ]


def test_files_without_drop_counters_are_named_once() -> None:
    said = _said(_coverage(_capture(0, drops=None), _capture(1, drops=None)))
    (drops,) = [s for s in said if s.topic == "drops"]
    assert drops.severity == INFO
    assert drops.text.startswith("capture-0.pcapng, capture-1.pcap: these files do not record")
    assert drops.evidence == PATHS


def test_busy_silence_may_be_a_pause_a_quiet_one_may_be_a_quiet_link() -> None:
    busy = Silence(0, 10, 11, T0 + 60, 300.0, 30_000.0, 4)
    (text,) = _texts(_coverage(_capture(silences=(busy,), silence_count=1, silence_seconds=300)))
    assert text == (
        "capture-0.pcapng: no packet at all for 5 min between packets 10 and 11 (from"
        " 2023-11-14 22:14:20 UTC), although the capture averaged 100 packets a second and 4"
        " connections were open across it: the capture may have paused."
    )
    quiet = Silence(0, 10, 11, T0 + 60, 300.0, 20.0, 0)
    calm = _coverage(_capture(packets=400, silences=(quiet,), silence_count=2))
    assert _texts(calm) == []
    (info,) = [s.text for s in _said(calm) if s.topic == "silence"]
    assert "the link was silent for more than 1 min 2 times (the longest 5 min" in info
    assert "may simply be a quiet link" in info


def test_clock_jump_warns_small_reordering_informs() -> None:
    jump = BackwardStep(0, 7, 8, T0 + 5, 3600.0)
    (text,) = _texts(_coverage(_capture(backward=(jump,), backward_count=2)))
    assert "packet times go backwards 2 times (the largest step 1 h" in text
    jitter = BackwardStep(0, 7, 8, T0 + 5, 0.0004)
    calm = _coverage(_capture(backward=(jitter,), backward_count=1))
    assert _texts(calm) == []
    (info,) = [s.text for s in _said(calm) if s.topic == "clock"]
    assert "(the largest step 0.4 ms" in info and "slightly out of time order" in info


def test_flows_are_counted_with_the_targets_share_and_linked() -> None:
    examples = tuple(FlowExample(i, 0, i * 10) for i in (4, 9, 12, 15))
    one_sided = FlowSet(7, 2, examples)
    (statement,) = [s for s in _said(_coverage(one_sided_tcp=one_sided)) if s.severity == WARNING]
    assert statement.text.startswith(
        "7 TCP connections were seen in one direction only (2 of them the target's)"
    )
    assert statement.text.endswith("For example flow 4, flow 9, flow 12.")
    assert statement.evidence == (
        "evidence/flows.csv#L5",
        "evidence/flows.csv#L10",
        "evidence/flows.csv#L13",
    )


def test_hidden_names_each_kind() -> None:
    one = FlowSet(1, 1, (FlowExample(3, 0, 30),))
    none = FlowSet(0, 0, ())
    coverage = _coverage(hidden=HiddenNames(one, one, one, none))
    text = _texts(coverage)
    assert text == [
        "1 TLS connection (the target's) used Encrypted ClientHello: the server name they"
        " really asked for is hidden; only a public name shows. For example flow 3.",
        "1 UDP flow (the target's) looks like QUIC (HTTP/3), but no readable opening packet of"
        " theirs was seen: the server names they used are unknown. For example flow 3.",
        "1 TLS connection (the target's) sent no server name (SNI): only the address says"
        " where they went. For example flow 3.",
    ]


def test_not_understood_counts_by_reason_with_the_targets_share() -> None:
    unread = (
        Unread(0, "frame", "unknown EtherType 0x88b5", 30, 0, (4, 5)),
        Unread(1, "frame", "incomplete fragments", 2, 2, (40,)),
        Unread(0, "payload", "DNS: bad label", 1, None, (9,)),
    )
    coverage = _coverage(_capture(0), _capture(1), not_understood=unread)
    frames, payloads = [s for s in _said(coverage) if "not-understood" in s.topic]
    assert frames.text == (
        "32 frames could not be read at all (2 could be the target's): capture-0.pcapng:"
        " unknown EtherType 0x88b5: 30, e.g. packet 4; capture-1.pcap: incomplete fragments:"
        " 2, e.g. packet 40."
    )
    assert frames.evidence == PATHS
    assert payloads.text.startswith("1 packet had contents that could not be read")
    assert "could be the target" not in payloads.text  # not known for it


def test_section_keys_are_stable_and_json_ready() -> None:
    obs = Scenario().observations(capture(last_time=T0 + 90))
    section = coverage_section(coverage_of(obs, minimum_window=3600.0), PATHS)
    assert list(section) == [
        "window",
        "captures",
        "one_sided_tcp",
        "not_understood",
        "hidden_names",
        "thresholds",
        "statements",
    ]
    assert list(section["window"]) == [
        "start",
        "end",
        "span_seconds",
        "covered_seconds",
        "minimum_seconds",
        "short",
        "absence_inconclusive",
    ]
    assert list(section["hidden_names"]) == [
        "ech",
        "quic_without_initial",
        "tls_without_sni",
        "tls_without_hello",
    ]
    assert section["captures"][0]["capture"] == "evidence/capture-0.pcapng"
    assert section["window"]["start"] == "2023-11-14T22:13:20.000000Z"
    assert json.loads(json_bytes(jsonable(section))) == section


def test_report_warnings_reads_a_written_report(tmp_path: Path) -> None:
    section = coverage_section(_coverage(end=T0 + 60, seconds=60.0), PATHS)
    (tmp_path / "report.json").write_bytes(json_bytes({"coverage": section}))
    (warning,) = report_warnings(tmp_path)
    assert warning.startswith("The captures cover only 1 min")
    (tmp_path / "report.json").write_text('{"coverage": null}')
    assert report_warnings(tmp_path) == []
    assert report_warnings(tmp_path / "missing") == []
