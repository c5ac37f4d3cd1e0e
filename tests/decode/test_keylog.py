"""NSS key logs and pcapng Decryption Secrets Blocks: real key logs from Python's ssl read,
every kind of bad line refused with file:line, DSBs found in any byte order and removed from
a copy without touching any other byte."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from conformance.decode.keylog import (
    DSB_TYPE,
    TLS_KEY_LOG_SECRETS,
    KeyLogError,
    copy_without_secrets,
    decrypts_client_data,
    merge,
    parse_keylog,
    pcapng_secrets,
    read_keylog,
)
from tests.capture_files import Epb, RawBlock, pcapng_section, write_bytes
from tests.tls_sessions import SessionFactory, write_sessions

RANDOM = "ab" * 32
TLS13 = "cd" * 48
MASTER = "ef" * 48


def _dsb(secret: bytes, big_endian: bool = False) -> RawBlock:
    order = ">" if big_endian else "<"
    padded = secret + b"\0" * (-len(secret) & 3)
    return RawBlock(DSB_TYPE, struct.pack(order + "II", TLS_KEY_LOG_SECRETS, len(secret)) + padded)


def test_python_ssl_key_logs_read_for_tls12_and_tls13(tmp_path: Path) -> None:
    sessions = SessionFactory(tmp_path)
    sessions.raw("api.imagicle.com", [b"x"])
    sessions.raw("api.imagicle.com", [b"y"], version="1.2")
    log = read_keylog(sessions.keylog)
    assert (log.tls12_sessions, log.tls13_sessions) == (1, 1)
    assert log.lines == 6  # five TLS 1.3 secrets and one master secret; the comment is skipped
    assert all(decrypts_client_data(labels) for labels in log.labels.values())
    assert "SHA-256" in log.describe() and len(log.sha256) == 64


def test_comments_blank_lines_crlf_and_case_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_bytes(
        b"# written by a product\r\n\r\n"
        + f"CLIENT_RANDOM {RANDOM.upper()} {MASTER}\r\n".encode()
        + f"  CLIENT_TRAFFIC_SECRET_0 {'12' * 32} {'34' * 32}  \n".encode()
    )
    log = read_keylog(path)
    assert log.lines == 2 and log.labels[RANDOM] == frozenset({"CLIENT_RANDOM"})


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (f"CLIENT_RANDOM {RANDOM}", "expected LABEL CLIENT_RANDOM SECRET, got 2 fields"),
        (f"SERVER_RANDOM {RANDOM} {MASTER}", "unknown label 'SERVER_RANDOM'"),
        (f"CLIENT_RANDOM {RANDOM[:-2]} {MASTER}", "must be 64 hex digits, got 62"),
        (f"CLIENT_RANDOM {RANDOM} {MASTER[:-2]}", "the secret must be 96 hex digits, got 94"),
        (f"CLIENT_TRAFFIC_SECRET_0 {RANDOM} {'ab' * 40}", "must be 64 or 96 hex digits, got 80"),
        (f"EXPORTER_SECRET {RANDOM} {'zz' * 32}", "must be 64 or 96 hex digits"),
        (f"RSA {'ab' * 4} {MASTER}", "RSA: the second field must be 16 hex digits, got 8"),
    ],
)
def test_a_bad_line_is_refused_naming_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(f"# ok\nCLIENT_RANDOM {'01' * 32} {MASTER}\n{line}\n")
    with pytest.raises(KeyLogError) as caught:
        read_keylog(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert problem in str(caught.value)


def test_not_a_key_log_at_all(tmp_path: Path) -> None:
    binary = tmp_path / "capture.pcap"
    binary.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(range(256)))
    with pytest.raises(KeyLogError, match="not ASCII text"):
        read_keylog(binary)
    with pytest.raises(KeyLogError, match="no such file"):
        read_keylog(tmp_path / "missing.txt")


def test_rsa_lines_are_counted_apart_and_labels_merge() -> None:
    one = parse_keylog([f"RSA {'ab' * 8} {MASTER}\n".encode()], "a")
    two = parse_keylog([f"CLIENT_TRAFFIC_SECRET_0 {RANDOM} {TLS13}\n".encode()], "b")
    assert one.rsa_keys == 1 and not one.labels
    assert merge([one, two]) == {RANDOM: frozenset({"CLIENT_TRAFFIC_SECRET_0"})}
    assert not decrypts_client_data(frozenset({"SERVER_TRAFFIC_SECRET_0"}))


@pytest.mark.parametrize("big_endian", [False, True])
def test_dsb_found_and_removed_byte_for_byte(tmp_path: Path, big_endian: bool) -> None:
    frames = [Epb(b"\x02" * 60, time=1.0), Epb(b"\x03" * 61, time=2.0)]
    secret = f"CLIENT_RANDOM {RANDOM} {MASTER}\n".encode()
    with_dsb = write_bytes(
        tmp_path / "in.pcapng",
        pcapng_section([_dsb(secret, big_endian), *frames], big_endian=big_endian),
    )
    plain = pcapng_section(frames, big_endian=big_endian)
    found = pcapng_secrets(with_dsb)
    assert found.problem is None and len(found.blocks) == 1
    (log,) = found.keylogs
    assert log.labels == {RANDOM: frozenset({"CLIENT_RANDOM"})}
    stripped = copy_without_secrets(with_dsb, tmp_path / "out.pcapng", found)
    assert stripped.read_bytes() == plain
    assert pcapng_secrets(stripped).blocks == ()


def test_a_bad_key_log_inside_a_dsb_names_its_offset(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "in.pcapng", pcapng_section([_dsb(b"CLIENT_RANDOM nothex\n"), Epb(b"\0" * 60)])
    )
    with pytest.raises(KeyLogError, match=r"DSB at byte \d+, line:1: "):
        pcapng_secrets(path)


def test_other_secret_kinds_are_listed_and_a_lying_length_stops_the_walk(tmp_path: Path) -> None:
    wireguard = RawBlock(DSB_TYPE, struct.pack("<II", 0x57474B4C, 4) + b"abcd")
    data = pcapng_section([wireguard, Epb(b"\0" * 60)])
    path = write_bytes(tmp_path / "in.pcapng", data + struct.pack("<III", 6, 4096, 0))
    found = pcapng_secrets(path)
    assert found.other_types == ("WireGuard key log",)
    assert found.problem is not None and "declares length 4096" in found.problem
    cut = write_bytes(tmp_path / "cut.pcapng", data + b"\x06\x00\x00")
    assert "ends inside a block header" in str(pcapng_secrets(cut).problem)


def test_a_pcap_file_has_no_secrets_blocks(tmp_path: Path) -> None:
    sessions = SessionFactory(tmp_path)
    path = write_sessions(tmp_path / "a.pcap", [sessions.raw("api.imagicle.com", [])])
    assert pcapng_secrets(path).blocks == ()


def test_editcap_injected_secrets_are_read(tmp_path: Path) -> None:
    """The DSB as Wireshark's own editcap writes it (`--inject-secrets`)."""
    sessions = SessionFactory(tmp_path)
    capture = write_sessions(tmp_path / "a.pcap", [sessions.raw("api.imagicle.com", [b"x"])])
    out = tmp_path / "with-keys.pcapng"
    subprocess.run(
        ["editcap", "--inject-secrets", f"tls,{sessions.keylog}", str(capture), str(out)],
        check=True,
        capture_output=True,
    )
    found = pcapng_secrets(out)
    (log,) = found.keylogs
    assert log.labels == read_keylog(sessions.keylog).labels


def test_large_captures_are_searched_to_their_first_packet_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.decode import keylog as tls_keylog

    secret = f"CLIENT_RANDOM {RANDOM} {MASTER}\n".encode()
    early = write_bytes(tmp_path / "early.pcapng", pcapng_section([_dsb(secret), Epb(b"\0" * 60)]))
    late = write_bytes(tmp_path / "late.pcapng", pcapng_section([Epb(b"\0" * 60), _dsb(secret)]))
    monkeypatch.setattr(tls_keylog, "FULL_SCAN_BYTES", 64)  # both count as large
    assert len(pcapng_secrets(early, whole=False).blocks) == 1
    assert pcapng_secrets(late, whole=False).blocks == ()
    assert len(pcapng_secrets(late).blocks) == 1
