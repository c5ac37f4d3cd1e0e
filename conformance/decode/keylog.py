"""TLS session keys the customer hands in: NSS key log files and pcapng Decryption Secrets
Blocks (DSB), read, checked and summarised without ever keeping a secret in memory.

The NSS key log format (the `SSLKEYLOGFILE` convention of NSS, OpenSSL, BoringSSL, Python's
`ssl`, curl, Java and .NET agents; draft-ietf-tls-keylogfile) is one secret a line:

    LABEL <client random: 32 bytes hex> <secret: hex>

`#` starts a comment; blank lines are allowed. A line that is not one of the known labels
with hex of the right length is a `KeyLogError` naming the file and line (exit 3): a damaged
key log would otherwise leave sessions silently undecrypted. What is kept per client random
is only which labels it has (`KeyLog.labels`), enough to tell whether a session can be
decrypted; the secrets stay in the file, which tshark reads itself.

A pcapng Decryption Secrets Block (pcapng spec, block type 0x0000000A, secrets type
`TLSK` = 0x544c534b) carries the same text inside the capture (`editcap --inject-secrets`).
`pcapng_secrets` walks a file's blocks (header fields only, through mmap) to find them, and
`copy_without_secrets` writes the capture again, byte for byte, without them: the report's
copy of a capture never carries keys unless the user asks (`--keep-secrets`).
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from conformance.errors import ConformanceError

# Secret lengths in bytes per NSS label. TLS 1.3 secrets are one hash long: SHA-256 (and
# SM3) 32, SHA-384 48.
TLS13_LENGTHS: Final = frozenset({32, 48})
LABELS: Final[Mapping[str, frozenset[int]]] = {
    "CLIENT_RANDOM": frozenset({48}),  # TLS 1.0-1.2 master secret
    "RSA": frozenset({48}),  # premaster secret; keyed by the encrypted premaster's 8 bytes
    "CLIENT_EARLY_TRAFFIC_SECRET": TLS13_LENGTHS,
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET": TLS13_LENGTHS,
    "SERVER_HANDSHAKE_TRAFFIC_SECRET": TLS13_LENGTHS,
    "CLIENT_TRAFFIC_SECRET_0": TLS13_LENGTHS,
    "SERVER_TRAFFIC_SECRET_0": TLS13_LENGTHS,
    "EARLY_EXPORTER_SECRET": TLS13_LENGTHS,
    "EXPORTER_SECRET": TLS13_LENGTHS,
    "ECH_SECRET": TLS13_LENGTHS,  # draft-ietf-tls-keylogfile: ECH, not used for decryption
    "ECH_CONFIG": frozenset(),  # any length: the ECHConfig itself
}
# What decrypts the client's application data (what the target sent): TLS 1.2 and earlier
# need the master secret, TLS 1.3 the client application traffic secret.
CLIENT_DATA_LABELS: Final = frozenset({"CLIENT_RANDOM", "CLIENT_TRAFFIC_SECRET_0"})
CLIENT_RANDOM_HEX: Final = 64
RSA_KEY_HEX: Final = 16  # the first 8 bytes of the encrypted premaster secret
MAX_LINE: Final = 4096  # longer than any NSS line (ECH_CONFIG included): not a key log

DSB_TYPE: Final = 0x0000000A
DSB_MIN: Final = 20  # type, length, secrets type, secrets length, trailing length
SHB_TYPE: Final = 0x0A0D0D0A
TLS_KEY_LOG_SECRETS: Final = 0x544C534B  # "TLSK"
SECRET_TYPES: Final = {
    0x544C534B: "TLS key log",
    0x57474B4C: "WireGuard key log",
    0x5A4E574B: "Zigbee NWK key",
    0x5A415053: "Zigbee APS key",
    0x6F736B73: "OPC UA key log",
}
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
PACKET_BLOCKS: Final = frozenset({2, 3, 6})  # obsolete PB, SPB, EPB
FULL_SCAN_BYTES: Final = 16 << 20  # walked whole by default below this (~0.1 s)
RELEASE_BYTES: Final = 32 << 20  # mapped pages walked past are given back every so often


class KeyLogError(ConformanceError):
    """A key log (file or DSB) that is not in the NSS key log format: names where."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class KeyLog:
    """What a key log holds, without its secrets: labels per client random, and a digest."""

    source: str  # file path, or "<capture> DSB #n"
    sha256: str  # of the key log's bytes
    lines: int  # secret lines
    labels: Mapping[str, frozenset[str]] = field(default_factory=dict)  # random hex -> labels
    rsa_keys: int = 0  # RSA lines (keyed by encrypted premaster, not by client random)

    @property
    def tls12_sessions(self) -> int:
        return sum(1 for labels in self.labels.values() if "CLIENT_RANDOM" in labels)

    @property
    def tls13_sessions(self) -> int:
        return sum(1 for labels in self.labels.values() if "CLIENT_TRAFFIC_SECRET_0" in labels)

    def describe(self) -> str:
        """ "12 secret lines: 3 TLS 1.2 sessions, 2 TLS 1.3 sessions (SHA-256 ab12...)"."""
        parts = [f"{self.tls12_sessions} TLS 1.2 sessions", f"{self.tls13_sessions} TLS 1.3"]
        if self.rsa_keys:
            parts.append(f"{self.rsa_keys} RSA premaster secrets")
        return f"{self.lines} secret lines ({', '.join(parts)}), SHA-256 {self.sha256}"


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)


def parse_keylog(lines: Iterable[bytes], where: str) -> KeyLog:
    """Check NSS key log lines; KeyLogError naming `where`:line for the first bad one."""
    digest = hashlib.sha256()
    labels: dict[str, set[str]] = {}
    count = rsa = 0
    for number, raw in enumerate(lines, 1):
        digest.update(raw)
        if len(raw) > MAX_LINE:
            raise KeyLogError(f"{where}:{number}", f"line longer than {MAX_LINE} bytes")
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise KeyLogError(f"{where}:{number}", "not ASCII text") from None
        if not text or text.startswith("#"):
            continue
        fields = text.split()
        if len(fields) != 3:
            raise KeyLogError(
                f"{where}:{number}",
                f"expected LABEL CLIENT_RANDOM SECRET, got {len(fields)} fields",
            )
        label, key, secret = fields
        lengths = LABELS.get(label)
        if lengths is None:
            raise KeyLogError(
                f"{where}:{number}", f"unknown label {label[:40]!r}; known: {', '.join(LABELS)}"
            )
        key_hex = RSA_KEY_HEX if label == "RSA" else CLIENT_RANDOM_HEX
        if len(key) != key_hex or not _is_hex(key):
            raise KeyLogError(
                f"{where}:{number}",
                f"{label}: the second field must be {key_hex} hex digits, got {len(key)}",
            )
        if not _is_hex(secret) or (lengths and len(secret) // 2 not in lengths):
            wanted = " or ".join(str(n * 2) for n in sorted(lengths)) or "an even number of"
            raise KeyLogError(
                f"{where}:{number}",
                f"{label}: the secret must be {wanted} hex digits, got {len(secret)}",
            )
        count += 1
        if label == "RSA":
            rsa += 1
            continue
        labels.setdefault(key.lower(), set()).add(label)
    return KeyLog(
        where,
        digest.hexdigest(),
        count,
        {k: frozenset(v) for k, v in labels.items()},
        rsa,
    )


def _split_lines(data: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


def read_keylog(path: Path) -> KeyLog:
    """Read and check an NSS key log file; KeyLogError (file:line) when it is not one."""
    if not path.is_file():
        raise KeyLogError(str(path), "no such file" if not path.exists() else "not a regular file")
    try:
        with path.open("rb") as handle:
            return parse_keylog(handle, str(path))
    except OSError as exc:
        raise KeyLogError(str(path), f"cannot read: {exc.strerror or exc}") from None


def merge(logs: Iterable[KeyLog]) -> dict[str, frozenset[str]]:
    """Labels per client random over several key logs."""
    out: dict[str, set[str]] = {}
    for log in logs:
        for key, labels in log.labels.items():
            out.setdefault(key, set()).update(labels)
    return {k: frozenset(v) for k, v in out.items()}


def decrypts_client_data(labels: frozenset[str] | None) -> bool:
    """Whether these labels decrypt what the client sent (TLS 1.2 master secret or the TLS
    1.3 client application traffic secret)."""
    return bool(labels and labels & CLIENT_DATA_LABELS)


# --- pcapng Decryption Secrets Blocks ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretsBlock:
    """One DSB of a capture: where it is and what it holds."""

    offset: int  # byte offset of the block in the file
    length: int  # block total length
    secrets_type: int
    keylog: KeyLog | None  # parsed when it is a TLS key log


@dataclass(frozen=True, slots=True)
class CaptureSecrets:
    """The DSBs of one capture file (none for a pcap file)."""

    path: Path
    blocks: tuple[SecretsBlock, ...] = ()
    problem: str | None = None  # the block walk stopped early (a lying length field)

    @property
    def keylogs(self) -> tuple[KeyLog, ...]:
        return tuple(b.keylog for b in self.blocks if b.keylog is not None)

    @property
    def other_types(self) -> tuple[str, ...]:
        return tuple(
            SECRET_TYPES.get(b.secrets_type, f"type 0x{b.secrets_type:08x}")
            for b in self.blocks
            if b.keylog is None
        )


def _blocks(data: mmap.mmap | bytes) -> Iterator[tuple[int, int, int, str]]:
    """(offset, type, total length, byte order) of every pcapng block; stops at a block whose
    length does not fit (ValueError)."""
    pos, size, order, released = 0, len(data), "<", 0
    while pos + 12 <= size:
        btype_le = struct.unpack_from("<I", data, pos)[0]
        if btype_le == SHB_TYPE:  # the same bytes in both orders: read the magic after it
            magic = data[pos + 8 : pos + 12]
            if len(magic) < 4:
                raise ValueError(f"section header at byte {pos} is cut short")
            order = "<" if struct.unpack_from("<I", magic)[0] == BYTE_ORDER_MAGIC else ">"
        btype, length = struct.unpack_from(order + "II", data, pos)
        if length < 12 or length % 4 or pos + length > size:
            raise ValueError(f"block at byte {pos} declares length {length}, which does not fit")
        yield pos, btype, length, order
        pos += length
        if isinstance(data, mmap.mmap) and pos - released > RELEASE_BYTES:
            # The pages walked are the file's, but they count as ours (resident set) until
            # given back: the walk must not look like a process holding the whole capture.
            end = pos - pos % mmap.PAGESIZE
            data.madvise(mmap.MADV_DONTNEED, released, end - released)
            released = end
    if pos < size:
        raise ValueError(f"the file ends inside a block header at byte {pos}")


def is_pcapng(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == struct.pack("<I", SHB_TYPE)


def pcapng_secrets(path: Path, *, whole: bool = True) -> CaptureSecrets:
    """The Decryption Secrets Blocks of a capture; TLS key logs among them are checked
    (KeyLogError naming the file and block offset). Without `whole`, a file larger than
    FULL_SCAN_BYTES is searched only up to its first packet block, where Wireshark and
    editcap write them: walking every block costs about 1.5 s per million packets."""
    if not path.is_file() or path.stat().st_size == 0 or not is_pcapng(path):
        return CaptureSecrets(path)
    head_only = not whole and path.stat().st_size > FULL_SCAN_BYTES
    found: list[SecretsBlock] = []
    problem = None
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            for offset, btype, length, order in _blocks(data):
                if head_only and btype in PACKET_BLOCKS:
                    break
                if btype != DSB_TYPE:
                    continue
                if length < DSB_MIN:
                    raise KeyLogError(
                        f"{path} DSB at byte {offset}",
                        f"block of {length} bytes has no room for its secrets type and length",
                    )
                stype, slen = struct.unpack_from(order + "II", data, offset + 8)
                body_end = offset + length - 4
                if offset + 16 + slen > body_end:
                    raise KeyLogError(
                        f"{path} DSB at byte {offset}",
                        f"secrets length {slen} runs past the block",
                    )
                keylog = None
                if stype == TLS_KEY_LOG_SECRETS:
                    secret = bytes(data[offset + 16 : offset + 16 + slen])
                    keylog = parse_keylog(
                        _split_lines(secret), f"{path} DSB at byte {offset}, line"
                    )
                found.append(SecretsBlock(offset, length, stype, keylog))
        except ValueError as exc:
            problem = str(exc)
    return CaptureSecrets(path, tuple(found), problem)


def copy_without_secrets(source: Path, dest: Path, secrets: CaptureSecrets) -> Path:
    """Write `source` to `dest` without its DSBs; every other byte as it was."""
    skip = sorted((b.offset, b.offset + b.length) for b in secrets.blocks)
    with source.open("rb") as src, dest.open("wb") as out:
        pos = 0
        for start, end in skip:
            _copy_range(src, out, pos, start)
            pos = end
        _copy_range(src, out, pos, None)
    return dest


COPY_CHUNK: Final = 1 << 20


def _copy_range(reader: BinaryIO, writer: BinaryIO, start: int, end: int | None) -> None:
    reader.seek(start)
    left = None if end is None else end - start
    while left is None or left > 0:
        chunk = reader.read(COPY_CHUNK if left is None else min(COPY_CHUNK, left))
        if not chunk:
            return
        writer.write(chunk)
        if left is not None:
            left -= len(chunk)
