"""Capture times the calendar cannot show are written `epoch:<seconds>`, never raised.

A capture's clock can say anything: a pcapng timestamp's high word 0xFFFFFFFF (year 586524),
a large negative if_tsoffset (before year 1), if_tsresol 0 (whole seconds: microseconds read
as seconds). Every writer (flows.csv, report.json, report.html, the coverage sentences, a
drafted profile's comments) writes such a time in the one form `report.text.outside_calendar`
gives, and times datetime can show exactly as before.
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
import struct
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.report.text import iso_epoch, iso_utc, outside_calendar, utc_strftime
from tests.after_run import Lab, make_lab

# 0001-01-01T00:00:00 and the first second after 9999-12-31T23:59:59: datetime's range.
FIRST_SECOND = -62135596800
PAST_LAST_SECOND = 253402300800
_MARKED = re.compile(r"epoch:-?\d+\.\d{6}")


def _by_datetime(seconds: float) -> str | None:
    """What datetime writes for `seconds`, None where it cannot."""
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    except (ValueError, OverflowError, OSError):
        return None


# --- the formatting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (PAST_LAST_SECOND + 0.5, "epoch:253402300800.500000"),
        (float(PAST_LAST_SECOND), "epoch:253402300800.000000"),
        (FIRST_SECOND - 0.5, "epoch:-62135596800.500000"),
        (1e20, "epoch:100000000000000000000.000000"),
        (-1e20, "epoch:-100000000000000000000.000000"),
        ((0xFFFFFFFF << 32) / 1e6, "epoch:18446744069414.585938"),  # ts high word all ones
        (1_700_000_000e6, "epoch:1700000000000000.000000"),  # if_tsresol 0
        (float(1_700_000_000 - 2**62), "epoch:-4611686016727388160.000000"),  # if_tsoffset -2**62
        (math.inf, "epoch:inf"),
        (-math.inf, "epoch:-inf"),
        (math.nan, "epoch:nan"),
    ],
)
def test_a_time_outside_the_calendar_is_written_in_the_epoch_form(
    seconds: float, text: str
) -> None:
    assert outside_calendar(seconds) == text
    assert iso_epoch(seconds) == text
    assert iso_utc(seconds) == text
    assert utc_strftime(seconds, "%Y-%m-%d %H:%M:%S UTC") == text


def _values() -> list[float]:
    rng = random.Random(20261204)
    values = [
        float(FIRST_SECOND),
        math.nextafter(FIRST_SECOND, -math.inf),
        math.nextafter(PAST_LAST_SECOND, 0),
        PAST_LAST_SECOND - 1 + 0.9999995,  # rounds up into year 10000
        0.0,
        -0.0,
        1_700_000_000.5,
        -1.25,
    ]
    for _ in range(20_000):
        values.append(rng.uniform(2 * FIRST_SECOND, 2 * PAST_LAST_SECOND))
        values.append(rng.randrange(FIRST_SECOND, PAST_LAST_SECOND) + rng.randrange(10**6) / 1e6)
    return values


def test_times_in_the_calendar_are_unchanged_and_the_rest_marked() -> None:
    wrong = []
    for seconds in _values():
        expected = _by_datetime(seconds)
        if iso_utc(seconds) != (expected or outside_calendar(seconds)):
            wrong.append((seconds, iso_utc(seconds), expected))
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:3]}"


def test_strftime_times_in_the_calendar_are_unchanged() -> None:
    for seconds in (0.0, 1_700_000_000.25, -1.5, float(FIRST_SECOND), PAST_LAST_SECOND - 1.0):
        expected = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert utc_strftime(seconds, "%Y-%m-%dT%H:%M:%SZ") == expected


def test_an_aware_datetime_whose_utc_leaves_the_calendar() -> None:
    early = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert iso_utc(early) == outside_calendar(FIRST_SECOND - 1800)
    assert iso_utc(datetime(2024, 3, 4, 9, tzinfo=UTC)) == "2024-03-04T09:00:00.000000Z"


# --- captures whose clock leaves the calendar, end to end --------------------------------

_SYN = 0x02
_IN_RANGE = 1_700_000_000  # 2023-11-14T22:13:20Z


def _checksum(data: bytes) -> int:
    data += b"\0" * (len(data) & 1)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _syn(source: str, sport: int, destination: str, dport: int) -> bytes:
    """An Ethernet frame holding a TCP SYN (checksums right)."""
    src, dst = bytes(map(int, source.split("."))), bytes(map(int, destination.split(".")))
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, _SYN, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    ether = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return ether + ip + tcp


def _block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) & 3)
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) & 3)


def _pcapng(options: bytes, stamps: list[int]) -> bytes:
    """One Ethernet interface with `options`; a SYN on-prem per stamp, the last one out.

    `stamps` are the raw 64-bit timestamps of the Enhanced Packet Blocks.
    """
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    end = struct.pack("<HH", 0, 0) if options else b""
    idb = _block(1, struct.pack("<HHI", 1, 0, 65535) + options + end)
    blocks = [shb, idb]
    for index, stamp in enumerate(stamps):
        last = index == len(stamps) - 1
        frame = (
            _syn("192.0.2.10", 41000, "203.0.113.5", 443)
            if last
            else _syn("192.0.2.10", 40000 + index, "192.0.2.20", 8443)
        )
        head = struct.pack("<IIIII", 0, stamp >> 32, stamp & 0xFFFFFFFF, len(frame), len(frame))
        blocks.append(_block(6, head + frame))
    return b"".join(blocks)


_MICROS = _IN_RANGE * 10**6
# name -> (capture bytes, the outside SYN's time, the on-prem SYNs' flows.csv time or None)
CASES: dict[str, tuple[bytes, float, str | None]] = {
    "ts_high_word_all_ones": (
        _pcapng(b"", [_MICROS, _MICROS, _MICROS, 0xFFFFFFFF << 32]),
        (0xFFFFFFFF << 32) / 1e6,
        "2023-11-14T22:13:20.000000Z",
    ),
    "tsoffset_large_negative": (
        _pcapng(_option(14, struct.pack("<q", -(2**62))), [_MICROS] * 4),
        _IN_RANGE - 2**62,
        None,
    ),
    "tsresol_zero": (
        _pcapng(_option(9, b"\x00"), [_MICROS] * 4),
        float(_MICROS),
        None,
    ),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return make_lab(tmp_path_factory.mktemp("outside-calendar"))


def _run(lab: Lab, name: str, capture: bytes) -> tuple[int, Path]:
    path = lab.root / f"{name}.pcapng"
    path.write_bytes(capture)
    report = lab.root / f"report-{name}"
    arguments = ["run", "--profile", lab.profile, "--pcap", path, "--report-dir", report]
    return main([*map(str, arguments), "--sign-key", str(lab.key)]), report


def _marked_as(text: str, seconds: float) -> bool:
    """`text` is the epoch form of `seconds` (the decoder's float may differ in the last bit)."""
    return bool(_MARKED.fullmatch(text)) and math.isclose(
        float(text.removeprefix("epoch:")), seconds, rel_tol=1e-12
    )


@pytest.mark.parametrize("name", CASES)
def test_a_run_writes_the_report_with_epoch_times(lab: Lab, name: str) -> None:
    capture, outside_time, on_prem_text = CASES[name]
    code, report = _run(lab, name, capture)
    assert code == 1  # the SYN to 203.0.113.5 leaves an air-gapped environment: fail

    with (report / "evidence" / "flows.csv").open(newline="") as rows:
        flows = list(csv.DictReader(rows))
    out = next(f for f in flows if f["responder"] == "203.0.113.5")
    assert _marked_as(out["first_time"], outside_time), out["first_time"]
    assert out["last_time"] == out["first_time"]
    for flow in flows:
        if flow is not out and on_prem_text is not None:
            assert flow["first_time"] == on_prem_text

    coverage = json.loads((report / "report.json").read_text())["coverage"]
    # the tables and the coverage statement write the same time the same way
    assert coverage["window"]["end"] == out["last_time"]
    sentences = " ".join(s["text"] for s in coverage["statements"])
    assert f"to {out['last_time']}" in sentences
    assert out["last_time"] in (report / "report.html").read_text()
    assert main(["verify", "--key", str(lab.pub), str(report)]) == 0


@pytest.mark.parametrize("name", CASES)
def test_a_drafted_profile_comments_epoch_times(lab: Lab, name: str) -> None:
    capture, outside_time, _ = CASES[name]
    path = lab.root / f"draft-{name}.pcapng"
    path.write_bytes(capture)
    draft = lab.root / f"draft-{name}.yaml"
    arguments = ["profile", "draft", "--pcap", str(path), "--target", "192.0.2.10"]
    assert main([*arguments, "--mode", "air-gapped", "-o", str(draft)]) == 0
    seen = re.findall(r"epoch:-?\d+\.\d{6}", draft.read_text())
    assert seen
    assert all(_marked_as(text, outside_time) for text in seen)
