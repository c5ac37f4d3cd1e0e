"""observe.merge: any split of a capture into files, judged apart and merged, gives the verdicts
of the single pass; the merge is associative; what a split cannot give back fails closed.

Every built capture of the judge tests (air-gapped defects, hybrid and proxy captures) is cut
at every packet boundary, and at seeded pairs of boundaries into three files.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.packet import Packet, Raw

from conformance.catalog import load_catalog
from conformance.judge.controls import JUDGES
from conformance.observe.builder import observe_captures
from conformance.observe.merge import merge, merge_all
from conformance.observe.records import FlowPart, Observations
from conformance.profile_model import Profile
from conformance.verdict import Verdict
from tests import defects
from tests import proxy_captures as pc
from tests.defects import TARGET, write_pcap
from tests.judge import test_defect_captures, test_hybrid

Scenario = tuple[Callable[[], list[Packet]], Callable[[Path], Profile]]


def _scenarios() -> dict[str, Scenario]:
    found: dict[str, Scenario] = {}
    for name in sorted(test_defect_captures.EXPECTED):
        found[f"air-gapped/{name}"] = (
            test_defect_captures.builder(name),
            lambda _: defects.defect_profile(),
        )
    for name in sorted(test_hybrid.EXPECTED):
        found[f"hybrid/{name}"] = (
            test_hybrid.CAPTURES[name],
            lambda tmp, name=name: test_hybrid.profile_for(tmp, name),  # type: ignore[misc]
        )
    for name in (
        "proxied_clean",
        "direct_tls",
        "sni_mismatch",
        "no_sni",
        "disallowed_connect",
        "plaintext_get",
        "outside_resolver",
    ):
        found[f"proxy/{name}"] = (getattr(pc, name), lambda _: pc.proxy_profile())
    return found


SCENARIOS = _scenarios()


def verdicts(obs: Observations, profile: Profile) -> dict[str, Verdict]:
    """Every control of the profile's mode that a judge decides from observations."""
    controls = [c.id for c in load_catalog().for_mode(profile.mode.value) if c.id in JUDGES]
    return {cid: JUDGES[cid](obs, profile).verdict for cid in controls}


def observe_parts(
    tmp_path: Path, packets: Sequence[Packet], cuts: Sequence[int]
) -> list[Observations]:
    """Each file of `packets` cut before the packets numbered in `cuts`, observed on its own."""
    bounds = [0, *cuts, len(packets)]
    frames = _frames(packets)
    parts = []
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        path = tmp_path / f"part-{'-'.join(map(str, cuts))}-{i}.pcap"
        path.write_bytes(_PCAP_HEADER + b"".join(frames[start:end]))
        parts.append(observe_captures([path]))
    return parts


# Classic pcap, microsecond timestamps, Ethernet (as tests.defects.write_pcap writes it).
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
_serialised: dict[int, tuple[Sequence[Packet], list[bytes]]] = {}


def _frames(packets: Sequence[Packet]) -> list[bytes]:
    """Each packet's pcap record, serialised once per packet list (scapy is slow at it)."""
    known = _serialised.get(id(packets))
    if known is not None and known[0] is packets:
        return known[1]
    records = []
    for packet in packets:
        data = bytes(packet)
        micros = round(float(packet.time) * 1_000_000)
        head = struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(data), len(data))
        records.append(head + data)
    _serialised[id(packets)] = (packets, records)
    return records


def conversation_facts(obs: Observations) -> list[tuple[object, ...]]:
    """Each flow's conversation and counts, without packet numbers (which are per file)."""
    return sorted(
        (
            f.transport,
            str(f.initiator),
            f.initiator_port,
            str(f.responder),
            f.responder_port,
            f.packets_out,
            f.packets_in,
            f.bytes_out,
            f.bytes_in,
            f.accepted,
            f.answered,
            f.rejected,
            f.payload_out,
            f.tcp_flags_out,
            f.tcp_flags_in,
        )
        for f in obs.flows
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_two_file_split_gives_the_single_pass_verdicts(name: str, tmp_path: Path) -> None:
    build, profile_of = SCENARIOS[name]
    packets = build()
    profile = profile_of(tmp_path)
    whole = observe_captures([write_pcap(tmp_path / "whole.pcap", packets)])
    expected = verdicts(whole, profile)
    for cut in range(1, len(packets)):
        merged = merge_all(observe_parts(tmp_path, packets, [cut]))
        got = verdicts(merged, profile)
        where = f"cut before packet {cut + 1}: {got} != {expected}"
        if inexact(packets, cut):
            # Not exact (docs/continuous.md), but never more lenient.
            assert not_more_lenient(got, expected), where
        else:
            assert got == expected, where
        assert [f.flow_id for f in merged.flows] == list(range(1, len(merged.flows) + 1))
        assert merged.packets == whole.packets


def inexact(packets: Sequence[Packet], cut: int) -> bool:
    """Whether the cut splits what only both files together show (docs/continuous.md)."""
    return cuts_a_fragment_set(packets, cut) or cuts_a_tunnel_opening(packets, cut)


def cuts_a_fragment_set(packets: Sequence[Packet], cut: int) -> bool:
    """Whether the cut falls between fragments of one IP datagram (more fragments to come)."""
    before = packets[cut - 1]
    return before.haslayer(IP) and bool(before[IP].flags.MF)


def cuts_a_tunnel_opening(packets: Sequence[Packet], cut: int) -> bool:
    """Whether the cut falls between a proxy tunnel's SYN and the ServerHello inside it: the
    later file does not know the tunnel's CONNECT came first, so it does not look for the
    ServerHello after the proxy's answer."""
    for packet in packets[:cut]:
        if not (packet.haslayer(TCP) and packet[TCP].dport == 3128 and packet[TCP].flags.S):
            continue
        port = packet[TCP].sport
        for later in packets[cut:]:
            to_client = later.haslayer(TCP) and later[TCP].dport == port
            if to_client and later.haslayer(Raw) and bytes(later[Raw])[:1] == b"\x16":
                return True
    return False


def not_more_lenient(got: dict[str, Verdict], expected: dict[str, Verdict]) -> bool:
    """No control passes that the single pass did not pass, none fails less than it failed."""
    return all(
        got[c] is expected[c] or (got[c] is not Verdict.PASS and expected[c] is not Verdict.FAIL)
        for c in expected
    )


# Splits where the merged flows equal the single pass's in every count: nothing straddling a
# boundary is cut in a way the files cannot show (a hello's segments, a SYN retransmitted).
EXACT_FLOWS = ("air-gapped/clean_onprem_traffic", "air-gapped/tcp_leak", "hybrid/clean")


@pytest.mark.parametrize("name", EXACT_FLOWS)
def test_a_split_conversation_is_one_flow_with_the_counts_of_the_single_pass(
    name: str, tmp_path: Path
) -> None:
    build, _ = SCENARIOS[name]
    packets = build()
    whole = observe_captures([write_pcap(tmp_path / "whole.pcap", packets)])
    for cut in range(1, len(packets)):
        merged = merge_all(observe_parts(tmp_path, packets, [cut]))
        assert conversation_facts(merged) == conversation_facts(whole), f"cut {cut}"
        assert [h.sni for h in merged.client_hellos] == [h.sni for h in whole.client_hellos]


@pytest.mark.parametrize(
    "name",
    [
        "air-gapped/tcp_leak",
        "hybrid/proxy_clean",
        "proxy/sni_mismatch",
        "air-gapped/fragmented_leak",
    ],
)
def test_merge_is_associative_over_three_files(name: str, tmp_path: Path) -> None:
    build, profile_of = SCENARIOS[name]
    packets = build()
    profile = profile_of(tmp_path)
    whole = observe_captures([write_pcap(tmp_path / "whole.pcap", packets)])
    expected = verdicts(whole, profile)
    rng = random.Random(f"merge-{name}")
    for _ in range(12):
        first, second = sorted(rng.sample(range(1, len(packets)), 2))
        a, b, c = observe_parts(tmp_path, packets, [first, second])
        left = merge(merge(a, b), c)
        right = merge(a, merge(b, c))
        assert left == right, f"cuts {first}, {second}"
        got = verdicts(left, profile)
        if any(inexact(packets, cut) for cut in (first, second)):
            assert not_more_lenient(got, expected)
        else:
            assert got == expected


def test_a_flow_across_files_lists_its_packets_in_each(tmp_path: Path) -> None:
    packets = defects.tcp_leak()
    cut = len(packets) - 3  # the leak's SYN-ACK, ACK and data in one file, request and FIN next
    merged = merge_all(observe_parts(tmp_path, packets, [cut]))
    (leak,) = [f for f in merged.flows if str(f.responder) == defects.OUTSIDE]
    assert leak.capture == 0 and leak.continued == (FlowPart(1, 1, 3),)
    assert leak.handshake_seen and str(leak.initiator) == TARGET
    assert leak.last_time == merged.captures[1].last_time


def test_merging_with_nothing_changes_nothing(tmp_path: Path) -> None:
    obs = observe_captures([write_pcap(tmp_path / "c.pcap", defects.mid_connection_leak())])
    empty = Observations(captures=(), flows=())
    assert merge(obs, empty) == obs
    assert merge(empty, obs) == obs
    assert merge_all([]) == empty


def test_mid_connection_parts_take_the_direction_of_the_part_that_saw_the_syn(
    tmp_path: Path,
) -> None:
    # An outside client's connection to the target's high port: in the second file alone
    # its direction would be guessed by port; the first file saw the SYN.
    session = defects.tcp_session(defects.OUTSIDE_CLIENT, 40000, TARGET, 8443, b"x" * 20, b"y" * 20)
    packets = defects._Clock().stamp(session)
    a, b = observe_parts(tmp_path, packets, [1])  # the SYN alone, then the rest
    merged = merge(a, b)
    (flow,) = merged.flows
    assert str(flow.initiator) == defects.OUTSIDE_CLIENT and flow.handshake_seen
    assert flow.accepted and flow.packets_out + flow.packets_in == len(packets)
    assert not any("began before the capture" in n for n in merged.notes)


def test_a_new_connection_on_the_same_ports_after_a_boundary_is_a_flow_of_its_own(
    tmp_path: Path,
) -> None:
    first = defects.tcp_session(TARGET, 49152, defects.AD, 389, b"a", b"b")
    second = defects.tcp_session(TARGET, 49152, defects.AD, 389, b"c", b"d")
    packets = defects._Clock().stamp([*first, *second])
    merged = merge_all(observe_parts(tmp_path, packets, [len(first)]))
    whole = observe_captures([write_pcap(tmp_path / "whole.pcap", packets)])
    assert len(merged.flows) == len(whole.flows) == 2


def test_dns_repeats_in_two_files_are_one_record(tmp_path: Path) -> None:
    lookup = lambda: defects.dns_lookup(  # noqa: E731
        TARGET, defects.DNS_SERVER, "cucm.corp.example", answers=[defects.CUCM]
    )
    packets = defects._Clock().stamp([*lookup(), *lookup(), *lookup()])
    whole = observe_captures([write_pcap(tmp_path / "whole.pcap", packets)])
    merged = merge_all(observe_parts(tmp_path, packets, [2, 4]))
    (query,) = merged.dns
    (single,) = whole.dns
    assert query.count == single.count == 3
    assert query.answer_runs == single.answer_runs
    assert query.capture == 0 and query.packet == 1


def test_a_client_hello_cut_by_a_file_boundary_never_passes_hy_dest(tmp_path: Path) -> None:
    # The hello names a host the profile does not allow; its second segment, with the name,
    # is in the next file. The first file counts an incomplete hello: HY-DEST may not pass.
    hello = defects.client_hello("updates.example.net")
    name_at = hello.index(b"updates")
    session = defects.tcp_session(TARGET, 40001, test_hybrid.API, 443)
    syn, synack, ack = session[:3]
    segments = []
    seq = 1001
    for chunk in (hello[: name_at - 2], hello[name_at - 2 :]):
        tcp = TCP(sport=40001, dport=443, flags="PA", seq=seq, ack=5001)
        segments.append(defects._frame(TARGET, test_hybrid.API, tcp) / Raw(chunk))
        seq += len(chunk)
    fin = TCP(sport=40001, dport=443, flags="FA", seq=seq, ack=5001)
    packets = defects._Clock().stamp(
        [
            *test_hybrid.lookup("api.imagicle.com", test_hybrid.API),
            syn,
            synack,
            ack,
            *segments,
            defects._frame(TARGET, test_hybrid.API, fin),
        ]
    )
    profile = test_hybrid.profile_for(tmp_path, "cut")
    whole = observe_captures([write_pcap(tmp_path / "whole.pcap", packets)])
    assert verdicts(whole, profile)["HY-DEST"] is Verdict.FAIL
    cut = packets.index(segments[1])
    merged = merge_all(observe_parts(tmp_path, packets, [cut]))
    got = verdicts(merged, profile)
    assert got["HY-DEST"] is not Verdict.PASS
    assert any(
        n.reason == "TLS: ClientHello incomplete" for n in merged.captures[0].payload_not_understood
    )


def test_captures_that_overlap_in_time_are_never_joined(tmp_path: Path) -> None:
    # Two capture points that saw the same connection: two flows, as the observers give.
    packets = defects.tcp_leak()
    a = observe_captures([write_pcap(tmp_path / "a.pcap", packets)])
    b = observe_captures([write_pcap(tmp_path / "b.pcap", packets)])
    merged = merge(a, b)
    assert len(merged.flows) == 2 * len(a.flows)
    assert merged.flows[len(a.flows)].capture == 1


def test_evidence_of_one_run_is_kept_and_two_different_ones_are_refused() -> None:
    from conformance.observe.json_logs import JsonLines

    probes = JsonLines("probes.jsonl", (), ())
    other = JsonLines("other.jsonl", (), ())
    a = Observations(captures=(), flows=(), probes=probes, source="lab")
    b = Observations(captures=(), flows=(), source="pcap")
    assert merge(a, b).probes == probes and merge(a, b).source == "lab+pcap"
    with pytest.raises(ValueError, match="probes"):
        merge(a, dataclasses.replace(b, probes=other))
