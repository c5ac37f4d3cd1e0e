"""Cut a capture down to the target's TLS and HTTP connections before tshark dissects it.

tshark dissects every frame of a file (RTP media included, which is most of a UC server's
traffic): about 7,000 frames a second here, so a 2-million-packet capture would take minutes.
The target's connections worth decrypting are known from the Observations (content.coverage
and the target's plaintext HTTP flows), so one pass of the project's own reader
(conformance.decode) copies only their packets, in order, into a small pcapng whose every
packet carries its original number (`FrameMap`): tshark's frame N is packet FrameMap[N] of the
capture, and every record written points at the original packet numbers.

A packet is kept when its IP addresses and TCP ports are those of a wanted connection (either
direction). What this pass cannot see through (a tunnel or mirror encapsulation, an IP
fragment without ports) shows as a wanted connection with fewer packets kept than the
Observations counted; then `subset` returns None and the whole capture goes to tshark, slow
but complete. Decryption Secrets Blocks of the capture are carried into the subset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from conformance.decode.capture_file import open_capture
from conformance.decode.errors import DecodeError
from conformance.decode.ip import IPPROTO_TCP, decode_ip
from conformance.decode.keylog import CaptureSecrets
from conformance.decode.link import ETHERTYPE_IPV4, ETHERTYPE_IPV6, network_layer
from conformance.observe.records import Flow, Observations

NANOSECONDS: Final = 9  # if_tsresol: the subset keeps the capture's time to the nanosecond
_TCP_PORTS: Final = struct.Struct(">HH")

Key = tuple[bytes, int, bytes, int]  # packed client address, port, server address, port


@dataclass(frozen=True, slots=True)
class Subset:
    """A capture cut down to some connections: the file, and tshark frame -> packet number."""

    path: Path
    frames: tuple[int, ...]  # frames[n - 1]: the original number of the subset's frame n

    def original(self, frame: int) -> int:
        return self.frames[frame - 1] if 0 < frame <= len(self.frames) else frame


def _packed(address: object) -> bytes:
    packed = getattr(address, "packed", None)
    assert isinstance(packed, bytes)
    return packed


def wanted_flows(observations: Observations, capture: int, flow_ids: Iterable[int]) -> list[Flow]:
    """The TCP flows of one capture with these ids."""
    ids = set(flow_ids)
    return [f for f in observations.flows if f.flow_id in ids and f.capture == capture]


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) & 3)
    length = len(body) + 12
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


class _Writer:
    """A little-endian pcapng: one section, an interface per link type, EPBs."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.interfaces: dict[int, int] = {}
        handle.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))

    def secrets(self, secrets_type: int, data: bytes) -> None:
        self.handle.write(_block(0x0000000A, struct.pack("<II", secrets_type, len(data)) + data))

    def packet(self, time: float, linktype: int, data: bytes, origlen: int) -> None:
        interface = self.interfaces.get(linktype)
        if interface is None:
            interface = self.interfaces[linktype] = len(self.interfaces)
            option = struct.pack("<HH", 9, 1) + bytes([NANOSECONDS]) + b"\0\0\0"
            end = struct.pack("<HH", 0, 0)
            self.handle.write(_block(1, struct.pack("<HHI", linktype, 0, 0) + option + end))
        stamp = round(time * 1_000_000_000)
        body = struct.pack("<IIIII", interface, stamp >> 32, stamp & 0xFFFFFFFF, len(data), origlen)
        self.handle.write(_block(6, body + data))


def _dsb_contents(capture: Path, secrets: CaptureSecrets) -> list[tuple[int, bytes]]:
    """(secrets type, data) of every DSB of the capture, in the capture's byte order."""
    out = []
    with capture.open("rb") as handle:
        for block in secrets.blocks:
            handle.seek(block.offset)
            raw = handle.read(block.length)
            order = "<" if struct.unpack_from("<I", raw, 0)[0] == 0x0000000A else ">"
            stype, length = struct.unpack_from(order + "II", raw, 8)
            out.append((stype, raw[16 : 16 + length]))
    return out


def subset(
    capture: Path,
    flows: Sequence[Flow],
    dest: Path,
    secrets: CaptureSecrets | None = None,
) -> Subset | None:
    """The packets of `flows` (TCP) copied from `capture` into `dest`; None when some flow's
    packets could not all be found (tshark must then read the whole capture)."""
    wanted: dict[Key, Flow] = {}
    for flow in flows:
        client, server = _packed(flow.initiator), _packed(flow.responder)
        wanted[(client, flow.initiator_port, server, flow.responder_port)] = flow
        wanted[(server, flow.responder_port, client, flow.initiator_port)] = flow
    counts: dict[int, int] = {}
    frames: list[int] = []
    with dest.open("wb") as handle, open_capture(capture) as reader:
        writer = _Writer(handle)
        for stype, data in _dsb_contents(capture, secrets) if secrets else ():
            writer.secrets(stype, data)
        number = 0
        for time, buf, off, caplen, origlen, linktype, _ in reader.packets():
            number += 1
            end = off + caplen
            # Ethernet, IPv4, not TCP (RTP, mostly): leave before any call.
            if (
                linktype == 1
                and end > off + 23
                and buf[off + 12 : off + 14] == b"\x08\x00"
                and buf[off + 23] != IPPROTO_TCP
            ):
                continue
            try:
                ethertype, net, _ = network_layer(linktype, buf, off, end)
                if ethertype not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
                    continue
                if ethertype == ETHERTYPE_IPV4 and (net + 10 > end or buf[net + 9] != 6):
                    continue  # not TCP: most of a capture (RTP) leaves here
                ip = decode_ip(buf, net, end, ethertype)
            except (DecodeError, KeyError, IndexError):
                continue
            if ip.proto != IPPROTO_TCP or ip.fragment is not None or ip.l4 + 4 > ip.end:
                continue
            sport, dport = _TCP_PORTS.unpack_from(buf, ip.l4)
            match = wanted.get((ip.src, sport, ip.dst, dport))
            if match is None or not match.first_packet <= number <= match.last_packet:
                continue
            counts[match.flow_id] = counts.get(match.flow_id, 0) + 1
            frames.append(number)
            writer.packet(time, linktype, bytes(buf[off:end]), origlen)
    complete = all(counts.get(f.flow_id, 0) >= f.packets_out + f.packets_in for f in flows)
    if not complete:
        dest.unlink(missing_ok=True)
        return None
    return Subset(dest, tuple(frames))
