"""Where every frame of one capture ended up: decoded, link-layer control, or not understood.

Controls.md decision 10: nothing is ignored silently. Every decoder and observer reports
into one `Accounting` per capture instead of keeping counters of its own:

- the hot loops decode most frames without reporting anything; every frame they hand to
  the general path (or to a tunnel's inner frame) is `entered`, and the general path
  settles each one exactly once: `decoded`, `link_control(kind)` or `not_understood(reason)`
  (fragments settle when their datagram is whole or given up on). So
  decoded + link control + not understood == packets, which tests check on every capture;
- `payload_not_understood` counts packets whose transport decoded (they are in their flow)
  but whose payload a parser could not read, or read only by not trusting a length field.

Each count keeps its lowest frame numbers and the addresses the frames carried (MACs and IP
addresses of every layer, grouped), so a judge can tell which of them could be the
target's. Everything kept is bounded; counts stay exact. What is kept does not depend on
the order frames were settled in (a fragment settles after later frames), so the
accountings of a capture's parts observed apart join into the one pass's (`absorb`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from conformance.observe.records import (
    ANOMALY_SAMPLES,
    MAX_ADDRESSES_PER_MAC,
    MAX_LINK_ADDRESSES,
    MAX_PARTY_GROUPS,
    MAX_REASONS,
    NOT_UNDERSTOOD_FRAMES,
    OTHER_REASONS,
    Anomaly,
    LinkAddress,
    LinkControl,
    NotUnderstood,
    Parties,
)

# Link-control kinds kept by name; past this they are counted under one name.
MAX_LINK_KINDS = 64
OTHER_LINK_KINDS = "other link control"
# MAC + source address pairs learned per capture (see LinkAddress): enough for every pair
# the model keeps, bounded however many hosts a mirror port shows.
MAX_SENDERS = MAX_LINK_ADDRESSES * MAX_ADDRESSES_PER_MAC

_MAC = 6

PartyKey = tuple[bytes, ...]  # sorted packed addresses: 6 bytes MAC, 4 IPv4, 16 IPv6


@dataclass(slots=True)
class _Tally:
    count: int = 0
    frames: list[int] = field(default_factory=list)
    groups: dict[PartyKey, int] = field(default_factory=dict)
    untold: int = 0

    def add(self, frames: Iterable[int], parties: PartyKey | None) -> None:
        for frame in frames:
            self.count += 1
            _keep_lowest(self.frames, frame, NOT_UNDERSTOOD_FRAMES)
            if parties is None:
                self.untold += 1
            elif parties in self.groups or len(self.groups) < MAX_PARTY_GROUPS:
                self.groups[parties] = self.groups.get(parties, 0) + 1
            else:
                self.untold += 1

    def record(self, reason: str) -> NotUnderstood:
        return NotUnderstood(
            reason,
            self.count,
            tuple(sorted(self.frames)),
            tuple(_parties(key, count) for key, count in sorted(self.groups.items())),
            self.untold,
        )

    def absorb(self, other: _Tally) -> bool:
        """Add `other`'s frames; False if a bound made what is kept depend on the order."""
        for frame in other.frames:
            _keep_lowest(self.frames, frame, NOT_UNDERSTOOD_FRAMES)
        self.count += other.count
        self.untold += other.untold
        for key, count in other.groups.items():
            self.groups[key] = self.groups.get(key, 0) + count
        # Up to the bound, every part's groups were all kept, as the one pass keeps them.
        return len(self.groups) <= MAX_PARTY_GROUPS


def _keep_lowest(frames: list[int], frame: int, bound: int) -> None:
    """Keep the `bound` lowest frame numbers in `frames` (unsorted)."""
    if len(frames) < bound:
        frames.append(frame)
        return
    highest = max(frames)
    if frame < highest:
        frames[frames.index(highest)] = frame


def party_key(addresses: Iterable[bytes]) -> PartyKey:
    """The group key of a set of packed addresses."""
    return tuple(sorted(set(addresses)))


def mac_text(mac: bytes) -> str:
    return mac.hex(":")


def _parties(key: PartyKey, count: int) -> Parties:
    return Parties(
        count,
        tuple(ipaddress.ip_address(a) for a in key if len(a) != _MAC),
        tuple(mac_text(a) for a in key if len(a) == _MAC),
    )


class Accounting:
    """The frame and payload tallies of one capture."""

    def __init__(self, capture: int) -> None:
        self.capture = capture
        self.entered = 0  # frames handed to the general path, each settled exactly once
        self.decoded = 0  # of those, decoded to their transport
        self.malformed = 0  # not-understood frames plus payloads
        self.anomalies: list[Anomaly] = []
        self.senders: set[bytes] = set()  # MAC + source IP of frames that carried IP
        self._link: dict[str, int] = {}
        self._frames: dict[str, _Tally] = {}
        self._payloads: dict[str, _Tally] = {}

    # -- reporting ------------------------------------------------------------------------

    def link_control(self, kind: str, frames: int = 1) -> None:
        """Frames of link-layer control that cannot leave the segment."""
        if kind not in self._link and len(self._link) >= MAX_LINK_KINDS:
            kind = OTHER_LINK_KINDS
        self._link[kind] = self._link.get(kind, 0) + frames

    def not_understood(self, frames: Iterable[int], reason: str, parties: PartyKey | None) -> None:
        """Frames that reached no transport; `parties` None: no address tells whose they are."""
        self._count(self._frames, frames, reason, parties)

    def payload_not_understood(self, frame: int, reason: str, parties: PartyKey) -> None:
        """A packet counted in its flow whose payload could not be read in full."""
        self._count(self._payloads, (frame,), reason, parties)

    def learn(self, mac: bytes, source: bytes) -> None:
        """A frame from `mac` carried an IP packet from `source` (bounded)."""
        if len(self.senders) < MAX_SENDERS:
            self.senders.add(mac + source)

    def _count(
        self,
        table: dict[str, _Tally],
        frames: Iterable[int],
        reason: str,
        parties: PartyKey | None,
    ) -> None:
        tally = table.get(reason)
        if tally is None:
            if len(table) >= MAX_REASONS:
                reason = OTHER_REASONS
                tally = table.get(reason)
            if tally is None:
                tally = table[reason] = _Tally()
        numbers = list(frames)
        tally.add(numbers, parties)
        self.malformed += len(numbers)
        for frame in numbers:
            self._anomaly(Anomaly(self.capture, frame, reason))

    def _anomaly(self, anomaly: Anomaly) -> None:
        """Keep the ANOMALY_SAMPLES lowest anomalies by (frame, reason), in any order."""
        kept = self.anomalies
        if len(kept) < ANOMALY_SAMPLES:
            kept.append(anomaly)
            return
        highest = max(range(len(kept)), key=lambda i: (kept[i].packet, kept[i].reason))
        if (anomaly.packet, anomaly.reason) < (kept[highest].packet, kept[highest].reason):
            kept[highest] = anomaly

    def sorted_anomalies(self) -> tuple[Anomaly, ...]:
        """The anomalies kept, by frame (then reason)."""
        return tuple(sorted(self.anomalies, key=lambda a: (a.packet, a.reason)))

    def absorb(self, other: Accounting) -> bool:
        """Add what `other` (another part of the same capture) counted.

        False when a bound (reasons, link-control kinds, party groups, senders) was reached:
        what is kept would then depend on the order frames came in, and the caller reads
        the capture again in one pass.
        """
        exact = True
        self.entered += other.entered
        self.decoded += other.decoded
        self.malformed += other.malformed
        for anomaly in other.anomalies:
            self._anomaly(anomaly)
        for kind, count in other._link.items():
            self._link[kind] = self._link.get(kind, 0) + count
        exact = len(self._link) <= MAX_LINK_KINDS and OTHER_LINK_KINDS not in self._link
        for mine, theirs in ((self._frames, other._frames), (self._payloads, other._payloads)):
            for reason, tally in theirs.items():
                exact = mine.setdefault(reason, _Tally()).absorb(tally) and exact
            exact = exact and len(mine) <= MAX_REASONS and OTHER_REASONS not in mine
        self.senders |= other.senders
        return exact and len(self.senders) < MAX_SENDERS

    # -- results --------------------------------------------------------------------------

    def link_controls(self) -> tuple[LinkControl, ...]:
        return tuple(LinkControl(k, n) for k, n in sorted(self._link.items()))

    def frames_not_understood(self) -> tuple[NotUnderstood, ...]:
        return tuple(t.record(r) for r, t in sorted(self._frames.items()))

    def payloads_not_understood(self) -> tuple[NotUnderstood, ...]:
        return tuple(t.record(r) for r, t in sorted(self._payloads.items()))

    def settled(self) -> int:
        """Frames of the general path settled so far (decoded, link control, not understood)."""
        return self.decoded + sum(self._link.values()) + sum(t.count for t in self._frames.values())

    def link_addresses(self) -> tuple[tuple[LinkAddress, ...], bool]:
        """MACs and the source addresses they sent, and whether the table is complete."""
        by_mac: dict[bytes, list[bytes]] = {}
        complete = len(self.senders) < MAX_SENDERS
        for sender in sorted(self.senders):
            mac, source = sender[:_MAC], sender[_MAC:]
            known = by_mac.get(mac)
            if known is None:
                if len(by_mac) >= MAX_LINK_ADDRESSES:
                    complete = False
                    continue
                known = by_mac[mac] = []
            if len(known) < MAX_ADDRESSES_PER_MAC:
                known.append(source)
            else:
                complete = False
        records = tuple(
            LinkAddress(mac_text(mac), tuple(ipaddress.ip_address(a) for a in sources))
            for mac, sources in by_mac.items()
        )
        return records, complete
