"""Decision 10 end to end: what the harness cannot read makes absence claims inconclusive when it
could be the target's; a leak seen elsewhere is still a fail; one bad packet is never an error."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from scapy.packet import Packet, Raw

from conformance.verdict import Verdict
from tests import defects
from tests import hidden_defects as hidden
from tests.defects import ADMIN, CUCM, TARGET, _mac
from tests.judge.test_defect_captures import judge_all
from tests.observe.frames import SERVER
from tests.observe.test_accounting import NOT_UNDERSTOOD

P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # noqa: E741
CONTROLS = ("AG-EGRESS", "AG-INGRESS", "AG-CLOUD-NAMES", "AG-ONPREM")


def judged(tmp_path: Path, frames: list[Packet]) -> dict[str, Verdict]:
    path = defects.write_pcap(tmp_path / "c.pcap", frames)
    return {k: r.verdict for k, r in judge_all(path).items()}


@pytest.mark.parametrize("kind", hidden.UNKNOWN_KINDS)
def test_a_frame_the_harness_cannot_read_from_the_target_makes_clean_inconclusive(
    kind: str, tmp_path: Path
) -> None:
    path = defects.write_pcap(tmp_path / "c.pcap", hidden.clean_with_unknown_frame(kind))
    for control_id, result in judge_all(path).items():
        assert result.verdict is I, (control_id, result.reason)
        assert "frames not understood that could be the target's" in result.reason


@pytest.mark.parametrize("kind", ["ethertype", "ip-protocol", "ipv4-header", "tcp-header"])
def test_a_frame_between_other_hosts_does_not(kind: str, tmp_path: Path) -> None:
    got = judged(tmp_path, hidden.clean_with_unknown_frame(kind, ADMIN, hidden.OTHER_HOST))
    assert got == dict.fromkeys(CONTROLS, P)


def test_an_unreadable_tunnel_payload_between_other_hosts_still_counts(tmp_path: Path) -> None:
    # The outer addresses say whose the tunnel is, not whose the packet inside it is: a
    # router could be carrying the target's traffic. Nothing tells, so it could be.
    got = judged(
        tmp_path, hidden.clean_with_unknown_frame("gre-protocol", ADMIN, hidden.OTHER_HOST)
    )
    assert got == dict.fromkeys(CONTROLS, I)


def test_a_mac_only_frame_counts_by_the_mac_the_target_sends_from(tmp_path: Path) -> None:
    others = hidden.clean_with_unknown_frame_between_macs(_mac(ADMIN), _mac(CUCM))
    assert judged(tmp_path, others) == dict.fromkeys(CONTROLS, P)
    targets = hidden.clean_with_unknown_frame_between_macs(_mac(TARGET), _mac(CUCM))
    assert judged(tmp_path, targets) == dict.fromkeys(CONTROLS, I)


def test_a_frame_not_understood_does_not_hide_a_leak(tmp_path: Path) -> None:
    frames = [*defects.tcp_leak(), hidden.unknown_frame(TARGET, CUCM)]
    path = defects.write_pcap(tmp_path / "c.pcap", defects._Clock().stamp(frames))
    result = judge_all(path)["AG-EGRESS"]
    assert result.verdict is F
    assert "the evidence is also incomplete" in result.reason


# --- fragments -------------------------------------------------------------------------------


def test_a_first_fragment_alone_to_an_outside_resolver_fails(tmp_path: Path) -> None:
    got = judged(tmp_path, hidden.first_fragment_leak())
    assert got["AG-EGRESS"] is F
    assert got["AG-CLOUD-NAMES"] is F  # the query to an outside resolver, read from the fragment


def test_a_later_fragment_alone_to_an_outside_address_fails(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "c.pcap", hidden.later_fragment_leak())
    result = judge_all(path)["AG-EGRESS"]
    assert result.verdict is F
    assert result.violations[0].summary.startswith(f"{TARGET} -> {defects.OUTSIDE} ip-17")


def test_overlapping_fragments_are_inconclusive(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "c.pcap", hidden.overlapping_fragments_onprem())
    results = judge_all(path)
    for result in results.values():
        assert result.verdict is I, result.reason
    assert "overlapping fragments" in results["AG-EGRESS"].reason


# --- lengths that lie ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        hidden.zero_length_record_hello,
        hidden.connect_behind_lying_data_offset,
        hidden.damaged_method_with_cloud_host,
    ],
)
def test_a_cloud_name_behind_a_lying_length_is_still_read(build: object, tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "c.pcap", build())  # type: ignore[operator]
    result = judge_all(path)["AG-CLOUD-NAMES"]
    assert result.verdict is F, result.reason
    assert any("api.imagicle.com" in str(f) for f in result.violations)


# --- payload parsers that break --------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nbns", "dns", "tls"])
def test_a_packet_that_breaks_a_parser_beside_a_leak_is_still_fail(
    bad: str, tmp_path: Path
) -> None:
    got = judged(tmp_path, hidden.leak_beside(bad))
    assert got["AG-EGRESS"] is F


@pytest.mark.parametrize("bad", ["nbns", "dns"])
def test_an_unread_target_payload_makes_names_inconclusive_not_egress(
    bad: str, tmp_path: Path
) -> None:
    path = defects.write_pcap(tmp_path / "c.pcap", hidden.clean_beside(bad))
    results = judge_all(path)
    assert results["AG-EGRESS"].verdict is P  # the flow itself was seen
    names = results["AG-CLOUD-NAMES"]
    assert names.verdict is I
    assert "whose payload was not understood" in names.reason


def test_an_unread_payload_on_a_flow_to_the_target_counts(tmp_path: Path) -> None:
    # the broken ClientHello comes from an admin's PC, but to the target: its flow is the target's
    got = judged(tmp_path, hidden.clean_beside("tls"))
    assert got["AG-CLOUD-NAMES"] is I


def test_an_unread_payload_between_other_hosts_does_not_count(tmp_path: Path) -> None:
    got = judged(tmp_path, hidden.clean_beside("dns-of-another-host"))
    assert got == dict.fromkeys(CONTROLS, P)


@pytest.mark.parametrize(
    ("reason", "frame"), NOT_UNDERSTOOD, ids=[reason for reason, _ in NOT_UNDERSTOOD]
)
def test_every_reason_from_the_target_makes_a_clean_capture_inconclusive(
    reason: str, frame: bytes, tmp_path: Path
) -> None:
    # tests.observe.test_accounting's frames come from the target's address; they go to an
    # on-prem server here (an outside one would fail AG-EGRESS: the IP header still counts),
    # and their source MAC becomes the target's, so frames with no IP address count too.
    frame = frame.replace(ipaddress.ip_address(SERVER).packed, ipaddress.ip_address(CUCM).packed)
    if len(frame) >= 12:
        frame = frame[:6] + bytes.fromhex(_mac(TARGET).replace(":", "")) + frame[12:]
    sent = Raw(frame)
    sent.time = 0.0
    path = defects.write_pcap(tmp_path / "c.pcap", hidden._after_clean([sent]))
    for control_id, result in judge_all(path).items():
        assert result.verdict is I, (control_id, result.reason)
        assert reason in result.reason
