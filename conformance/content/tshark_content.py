"""The target's TLS sessions decrypted by tshark, turned into content-level messages.

Engine: Wireshark's tshark (the TLS 1.0-1.3 decryption it has carried for two decades, its
TCP and TLS reassembly, its HTTP/1.1 and HTTP/2 dissectors with HPACK): no TLS cryptography
and no HTTP/2 framing is written here. tshark reads the key log (`-o tls.keylog_file:`) and
every Decryption Secrets Block of a pcapng by itself.

    tshark -n -r CAPTURE -o tls.keylog_file:KEYS -T ek -x -J "frame ip ipv6 tcp tls http http2"
           -Y "<the target's TLS, HTTP and HTTP/2 packets, and ServerHellos to it>"

The `ek` output is one JSON document a line, read as a stream (one packet in memory at a
time; a line over MAX_EK_LINE is counted and skipped). For each TCP stream the target opened:
- the ClientHello gives the client random (is there a key for it?), SNI and ALPN; the
  ServerHello the version; a CONNECT before it (or tshark's proxy-tunnel fields) the host;
- decryption is shown by the client's Finished appearing as a handshake message, or by an
  application protocol dissected above TLS (`frame.protocols`);
- HTTP/1.1 requests give method, URI, header lines and the de-chunked body bytes
  (`http.file_data`, raw); HTTP/2 frames give decoded header lists and raw DATA bytes per
  stream, joined until END_STREAM; any other protocol above TLS gives its raw bytes.
Bodies are decoded by conformance.decode.bodies (JSON, gzip, gRPC frames, protobuf walk),
the same decoder as the lab's interceptor, and every message is written in the interceptor's
record format (`event: request` / `tcp-message`), plus where it is in the capture.
"""

from __future__ import annotations

import calendar
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

from conformance.content import ek_layers
from conformance.content.decryption_coverage import FlowIndex, TlsFlow
from conformance.content.ek_layers import values as _values
from conformance.content.prefilter import Subset
from conformance.decode.bodies import MAX_BODY, decode_body
from conformance.errors import ConformanceError

TSHARK: Final = "tshark"
PROTOCOLS: Final = "frame ip ipv6 tcp tls http http2"
MAX_EK_LINE: Final = 64 << 20  # one packet's JSON: a 16 MiB body (hex twice, raw) still fits
MAX_PENDING_BYTES: Final = 64 << 20  # HTTP/2 bodies waiting for END_STREAM, all streams
MAX_FRAMES_NAMED: Final = 5  # frames a note names; the rest are counted
MAX_DECODE_AS_PORTS: Final = 64  # -d tcp.port==N,tls for TLS on ports tshark does not know
TLS_PORTS: Final = frozenset({443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 8443})
# Layers that follow TLS in frame.protocols without being what the client sent: certificate
# structures (a client certificate) and TLS itself.
NOT_APPLICATION: Final = ("x509", "pkix", "pkcs", "cms", "ocsp", "ber", "tls", "ssl")
TLS_VERSIONS: Final = {
    0x0304: "TLSv1.3",
    0x0303: "TLSv1.2",
    0x0302: "TLSv1.1",
    0x0301: "TLSv1",
    0x0300: "SSLv3",
}
# TLS handshake message types (RFC 8446 §4)
CLIENT_HELLO: Final = 1
SERVER_HELLO: Final = 2
FINISHED: Final = 20


class TsharkMissingError(ConformanceError):
    """tshark is needed to decrypt the captures and is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "tshark is not installed: it decrypts the captures with the TLS keys"
            " (Debian/Ubuntu: apt-get install tshark; Windows/macOS: the Wireshark installer)"
        )


def tshark_version() -> str:
    """ "TShark (Wireshark) 4.0.17 ..." first line; TsharkMissingError when absent."""
    if shutil.which(TSHARK) is None:
        raise TsharkMissingError()
    done = subprocess.run(
        [TSHARK, "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    return done.stdout.splitlines()[0].strip() if done.stdout else "tshark (version unknown)"


@dataclass
class Session:
    """One TCP connection of the target carrying TLS, as tshark dissected it."""

    capture: int
    stream: int
    client: str
    client_port: int
    server: str
    server_port: int
    first_packet: int
    flow_id: int | None = None
    client_hello: int | None = None
    client_random: str | None = None
    sni: str | None = None
    alpn: str | None = None
    version: str | None = None
    connect: str | None = None
    finished: bool = False  # the client's Finished was decrypted
    application: int = 0  # client packets with a protocol dissected above TLS
    opaque: int = 0  # client packets with TLS application data and nothing above it
    messages: int = 0
    unread: str | None = None  # why some of what it sent could not be read (the first reason)

    @property
    def decrypted(self) -> bool:
        return self.finished or self.application > 0

    def tls(self) -> dict[str, Any]:
        return {"sni": self.sni, "version": self.version, "alpn": self.alpn}


@dataclass
class _Pending:
    """An HTTP/2 request stream whose END_STREAM has not been seen yet."""

    session: Session
    stream_id: int
    first_packet: int
    time: float
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    body_size: int = 0
    headers_done: bool = False
    ended: bool = False
    packets: list[int] = field(default_factory=list)


@dataclass
class Extraction:
    """What one capture gave: its sessions, what could not be read (`problems`: a message
    may be unseen, so its sessions are not covered) and what was read with less (`notes`)."""

    sessions: list[Session] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    messages: int = 0


Emit = Callable[[dict[str, Any]], None]


# --- EK output helpers -----------------------------------------------------------------------


def _instances(layers: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    value = layers.get(name)
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return [value] if isinstance(value, dict) else []


def _first(layer: Mapping[str, Any], key: str) -> Any:
    values = _values(layer, key)
    return values[0] if values else None


def _any(layers: Sequence[Mapping[str, Any]], key: str) -> Any:
    for layer in layers:
        value = _first(layer, key)
        if value is not None:
            return value
    return None


APART: Final = " (Wireshark 4 prints each apart)"


def _unread(session: Session, number: int, why: str) -> None:
    if session.unread is None:
        session.unread = f"packet {number}: {why}"


def _hex(value: Any) -> bytes:
    if not isinstance(value, str):
        return b""
    try:
        return bytes.fromhex(value.replace(":", ""))
    except ValueError:
        return b""


def _text(raw: Any) -> str:
    return _hex(raw).decode("utf-8", errors="replace")


def _int(value: Any) -> int | None:
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return None


# `-T ek` has printed absolute times in ISO 8601, UTC, since Wireshark 4.2 (Debian 13 has
# 4.4): "2023-11-14T22:13:20.004999936Z" where 4.0 printed "1700000000.004999936".
_ISO_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z")


def epoch_seconds(value: Any) -> float | None:
    """A frame's time as tshark prints it (seconds since the epoch, or an ISO 8601 time with
    its offset), in seconds; None for anything else. The digits are kept as printed: the
    two forms of one time give the same float."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    text = str(value)
    match = _ISO_TIME.match(text)
    if match is None:
        try:
            seconds = float(text)
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) else None
    whole, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    except ValueError:  # a 13th month, a 25th hour
        return None
    seconds = calendar.timegm(moment.utctimetuple())
    if seconds < 0:
        return seconds + int(fraction or "0") * 10.0 ** -len(fraction or "0")
    return float(f"{seconds}.{fraction or '0'}")


# --- running tshark --------------------------------------------------------------------------


# Client packets printed: handshake messages (the ClientHello's random, a decrypted Finished),
# HTTP and HTTP/2, anything dissected above TLS, and TLS application data only near the start
# of a stream (enough to tell a session that sent something from one that did not, without
# printing every packet of a bulk transfer nobody could decrypt).
EARLY_BYTES: Final = 4096  # a ClientHello (post-quantum key shares, ECH) and the Finished
APPLICATION_ABOVE_TLS: Final = 'frame.protocols matches ":tls:(?!x509|pkix|pkcs|cms|ocsp|ber)"'


def display_filter(targets: Sequence[str]) -> str:
    """The target's TLS handshakes, HTTP and HTTP/2, what is dissected above TLS, its early
    application data, and the ServerHellos sent to it."""
    v4 = [a for a in targets if ":" not in a]
    v6 = [a for a in targets if ":" in a]
    src = [f"ip.src in {{{' '.join(v4)}}}"] if v4 else []
    src += [f"ipv6.src in {{{' '.join(v6)}}}"] if v6 else []
    dst = [f"ip.dst in {{{' '.join(v4)}}}"] if v4 else []
    dst += [f"ipv6.dst in {{{' '.join(v6)}}}"] if v6 else []
    if not src:
        return "frame.number == 0"
    client = (
        f"tls.handshake.type || http.request || http2 || {APPLICATION_ABOVE_TLS}"
        f" || (tls.app_data && tcp.seq < {EARLY_BYTES})"
    )
    return (
        f"(({' || '.join(src)}) && ({client})) || (({' || '.join(dst)}) && tls.handshake.type == 2)"
    )


def tshark_argv(
    capture: Path,
    keylog: Path | None,
    targets: Sequence[str],
    tls_ports: Sequence[int] = (),
) -> list[str]:
    """The tshark command line for one capture."""
    argv = [TSHARK, "-n", "-r", str(capture)]
    if keylog is not None:
        argv += ["-o", f"tls.keylog_file:{keylog}"]
    argv += [
        "-o",
        "tcp.desegment_tcp_streams:TRUE",
        "-o",
        "tcp.reassemble_out_of_order:TRUE",
        "-o",
        "tls.desegment_ssl_records:TRUE",
        "-o",
        "tls.desegment_ssl_application_data:TRUE",
        "-o",
        "http.desegment_headers:TRUE",
        "-o",
        "http.desegment_body:TRUE",
    ]
    for port in sorted(set(tls_ports) - TLS_PORTS)[:MAX_DECODE_AS_PORTS]:
        argv += ["-d", f"tcp.port=={port},tls"]
    argv += ["-T", "ek", "-x", "-J", PROTOCOLS, "-Y", display_filter(targets)]
    return argv


def _lines(stream: IO[bytes], problems: list[str]) -> Iterator[bytes]:
    """Lines of tshark's output, each at most MAX_EK_LINE bytes (longer ones skipped)."""
    while True:
        line = stream.readline(MAX_EK_LINE + 1)
        if not line:
            return
        if len(line) > MAX_EK_LINE and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_EK_LINE)) and not rest.endswith(b"\n"):
                pass
            problems.append(
                f"a packet's dissection is larger than {MAX_EK_LINE >> 20} MiB of tshark output"
                " and was skipped (a message in it is unseen)"
            )
            continue
        yield line


def run_tshark(argv: Sequence[str], problems: list[str]) -> Iterator[dict[str, Any]]:
    """tshark's EK packets one by one; its exit status and errors go into `problems`."""
    with tempfile.TemporaryDirectory(prefix="ucx-tshark-") as home:
        # An empty configuration directory: the user's own Wireshark preferences (a key log
        # file, disabled protocols, decode-as rules) must not change what is judged.
        env = {**os.environ, "WIRESHARK_CONFIG_DIR": home, "HOME": home}
        errors = Path(home) / "stderr.txt"
        with errors.open("wb") as err:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=err, env=env)
            assert proc.stdout is not None
            finished = False
            try:
                for line in _lines(proc.stdout, problems):
                    if line.startswith(b'{"index"'):
                        continue
                    try:
                        packet = json.loads(line)
                    except ValueError:
                        problems.append("tshark wrote a line that is not JSON (skipped)")
                        continue
                    if isinstance(packet, dict) and isinstance(packet.get("layers"), dict):
                        yield packet["layers"]
                finished = True
            finally:
                proc.stdout.close()
                if not finished and proc.poll() is None:
                    proc.kill()  # interrupted (Ctrl-C, SIGTERM, an error): leave nothing running
                code = proc.wait()
        text = errors.read_text(errors="replace")
        lines = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and "could be dangerous" not in line
        ]
        if code != 0 or lines:
            shown = "; ".join(lines[-3:])[:400] or "no message"
            problems.append(f"tshark exited with status {code}: {shown}")


# --- from packets to sessions and messages ---------------------------------------------------


class Extractor:
    """Consumes tshark's packets of one capture; emits one record per client message."""

    def __init__(
        self,
        capture: int,
        capture_name: str,
        targets: frozenset[str],
        flows: FlowIndex | None,
        emit: Emit,
        frames: Subset | None = None,
    ) -> None:
        self.frames = frames  # tshark read a cut-down copy: its frame numbers are mapped back
        self.capture, self.capture_name = capture, capture_name
        self.targets, self.flows, self.emit = targets, flows, emit
        self.sessions: dict[int, Session] = {}
        self.pending: dict[tuple[int, int], _Pending] = {}
        self.pending_bytes = 0
        self.result = Extraction()
        self.unread_times = 0  # packets whose time tshark printed in no known form
        self.unread_frames: list[int] = []  # the first MAX_FRAMES_NAMED of them
        self.unread_time = ""  # the first such time, as printed

    def packet(self, layers: Mapping[str, Any]) -> None:
        frame = _instances(layers, "frame")
        tcp = _instances(layers, "tcp")
        if not frame or not tcp:
            return  # QUIC and other non-TCP TLS: listed by the coverage, not decrypted here
        number = _int(_first(frame[0], "frame_frame_number")) or 0
        if self.frames is not None:
            number = self.frames.original(number)
        printed = _first(frame[0], "frame_frame_time_epoch")
        time = epoch_seconds(printed) if printed is not None else 0.0
        if time is None:  # the packet is read on; its time is not known (said once, at close)
            self.unread_times += 1
            if len(self.unread_frames) < MAX_FRAMES_NAMED:
                self.unread_frames.append(number)
            self.unread_time = self.unread_time or str(printed)[:40]
            time = 0.0
        chain = str(_first(frame[0], "frame_frame_protocols") or "").split(":")
        ip = _instances(layers, "ip") or _instances(layers, "ipv6")
        if not ip:
            return
        prefix = "ip_ip" if "ip" in layers else "ipv6_ipv6"
        src = str(_first(ip[-1], f"{prefix}_src") or "")
        dst = str(_first(ip[-1], f"{prefix}_dst") or "")
        sport = _int(_first(tcp[-1], "tcp_tcp_srcport")) or 0
        dport = _int(_first(tcp[-1], "tcp_tcp_dstport")) or 0
        stream = _int(_first(tcp[-1], "tcp_tcp_stream"))
        if stream is None:
            return
        tls = _instances(layers, "tls")
        from_target = src in self.targets
        if not from_target:
            session = self.sessions.get(stream)
            if session is not None and SERVER_HELLO in _numbers(tls, "tls_tls_handshake_type"):
                self._server_hello(session, tls)
            return
        session = self.sessions.get(stream)
        if session is None:
            session = self._session(stream, src, sport, dst, dport, number)
        self._client_packet(session, layers, chain, number, time, tls)

    def _client_packet(
        self,
        session: Session,
        layers: Mapping[str, Any],
        chain: list[str],
        number: int,
        time: float,
        tls: Sequence[Mapping[str, Any]],
    ) -> None:
        """A packet the target sent: its CONNECT, its TLS handshake, and the messages in it."""
        http = _instances(layers, "http")
        for layer in http:
            host = _first(layer, "http_http_proxy_connect_host")
            if host and not session.connect:
                session.connect = f"{host}:{_first(layer, 'http_http_proxy_connect_port') or 443}"
        after = chain[chain.index("tls") + 1 :] if "tls" in chain else []
        in_tls = "tls" in chain
        if tls:
            self._tls(session, tls, number, after)
        app = next((p for p in after if not p.startswith(NOT_APPLICATION)), None)
        requests = [layer for layer in http if layer.get("http_http_request") is True]
        if requests and (not in_tls or "http" in after):
            self._requests(session, requests, number, time, tls_used=in_tls and "http" in after)
        elif app == "http":  # HTTP above TLS that is no request tshark printed: not read
            _unread(session, number, "tshark dissected HTTP in it and printed no request")
        if app == "http2":
            self._http2_packet(session, layers, number, time)
        elif app is not None and app != "http":
            raw = layers.get(f"{app}_raw")
            for chunk in raw if isinstance(raw, list) else [raw]:
                data = _hex(chunk)
                if data:
                    self._tcp_message(session, data, number, time)

    def _requests(
        self,
        session: Session,
        requests: Sequence[Mapping[str, Any]],
        number: int,
        time: float,
        *,
        tls_used: bool,
    ) -> None:
        for layer in requests:
            if ek_layers.merged_http_requests(layer):
                _unread(session, number, f"tshark printed several HTTP/1 requests as one{APART}")
            elif _first(layer, "http_http_request_method") is None:  # a field renamed?
                _unread(session, number, "tshark printed an HTTP/1 request without its method")
            else:
                self._http1(session, layer, number, time, tls_used=tls_used)

    def _http2_packet(
        self, session: Session, layers: Mapping[str, Any], number: int, time: float
    ) -> None:
        """The HTTP/2 frames of a packet tshark dissected as HTTP/2. What it printed in a form
        not known here (no frame, a frame without its type) leaves the connection not read:
        a request in it would go unseen."""
        instances = _instances(layers, "http2")
        if not instances:
            _unread(session, number, "tshark dissected HTTP/2 in it and printed no HTTP/2 frame")
        for layer in instances:
            try:
                frames = ek_layers.http2_frames(layer, layers.get("http2_raw"))
            except ek_layers.UnsplitError as why:
                _unread(session, number, f"{why}{APART}")
                continue
            for frame in frames:
                if frame.get("http2_http2_type") is None and "http2_http2_magic" not in frame:
                    _unread(session, number, "tshark printed an HTTP/2 frame without its type")
                else:
                    self._http2(session, frame, number, time)

    def _session(
        self, stream: int, client: str, cport: int, server: str, sport: int, number: int
    ) -> Session:
        session = Session(self.capture, stream, client, cport, server, sport, number)
        if self.flows is not None:
            flow = self.flows.find(self.capture, client, cport, server, sport, number)
            session.flow_id = flow.flow_id if flow is not None else None
        self.sessions[stream] = session
        self.result.sessions.append(session)
        return session

    def _server_hello(self, session: Session, tls: Sequence[Mapping[str, Any]]) -> None:
        version = _any(tls, "tls_tls_handshake_extensions_supported_version") or _any(
            tls, "tls_tls_handshake_version"
        )
        if version is not None:
            session.version = tls_version_name(version)

    def _tls(
        self, session: Session, tls: Sequence[Mapping[str, Any]], number: int, after: list[str]
    ) -> None:
        types = _numbers(tls, "tls_tls_handshake_type")
        if CLIENT_HELLO in types and session.client_hello is None:
            session.client_hello = number
            random = _any(tls, "tls_tls_handshake_random_raw")
            session.client_random = random.lower() if isinstance(random, str) else None
            sni = _any(tls, "tls_tls_handshake_extensions_server_name")
            session.sni = str(sni).lower().rstrip(".") if sni else None
            alpn = _values_all(tls, "tls_tls_handshake_extensions_alpn_str")
            session.alpn = ",".join(alpn) if alpn else None
        if FINISHED in types:
            session.finished = True
        if any(layer.get("tls_tls_app_data") is not None for layer in tls):
            if any(not p.startswith(NOT_APPLICATION) for p in after):
                session.application += 1
            else:
                session.opaque += 1

    def _base(self, session: Session, number: int, time: float) -> dict[str, Any]:
        return {
            "t": round(time, 6),
            "capture": self.capture_name,
            "flow": session.flow_id,
            "stream": session.stream,
            "packets": [number],
            "client": session.client,
            "client_port": session.client_port,
            "server": session.server,
            "server_port": session.server_port,
            "connect": session.connect,
        }

    def _port(self, session: Session, authority_port: int | None) -> int:
        if authority_port is not None:
            return authority_port
        if session.connect:
            return _int(session.connect.rpartition(":")[2]) or 443
        return session.server_port

    def _http1(
        self,
        session: Session,
        layer: Mapping[str, Any],
        number: int,
        time: float,
        *,
        tls_used: bool,
    ) -> None:
        method = str(_first(layer, "http_http_request_method") or "")
        if method.upper() == "CONNECT":
            uri = str(_first(layer, "http_http_request_uri") or "")
            session.connect = session.connect or uri
            return
        headers = []
        for raw in _values(layer, "http_http_request_line_raw"):
            name, _, value = _text(raw).partition(":")
            headers.append((name.strip(), value.strip()))
        host, port = _authority(str(_first(layer, "http_http_host") or ""))
        uri = str(_first(layer, "http_http_request_uri") or "")
        if uri.startswith(("http://", "https://")):  # absolute form (a request to a proxy)
            rest = uri.split("://", 1)[1]
            authority, slash, path = rest.partition("/")
            host, port = _authority(authority)
            uri = slash + path
        body = _hex(_first(layer, "http_http_file_data_raw"))
        record = {
            **self._base(session, number, time),
            "event": "request",
            "tls": session.tls() if tls_used else None,
            "proto": str(_first(layer, "http_http_request_version") or "HTTP/1.1"),
            "method": method,
            "scheme": "https" if tls_used else "http",
            "host": host or session.sni or session.server,
            "port": self._port(session, port) if tls_used else (port or session.server_port),
            "path": uri,
            "headers": [[k, v] for k, v in headers],
            "body": decode_body(body, _header(headers, "content-type"), ""),
        }
        self._emit(session, record)

    def _http2(self, session: Session, layer: Mapping[str, Any], number: int, time: float) -> None:
        kind = _int(_first(layer, "http2_http2_type"))
        stream_id = _int(_first(layer, "http2_http2_streamid"))
        if kind not in (0, 1, 9) or not stream_id or stream_id % 2 == 0:
            return  # only the client's request streams (odd ids) carry what it sent
        key = (session.stream, stream_id)
        pending = self.pending.get(key)
        if pending is None:
            if kind != 1:
                return  # DATA without its HEADERS (began before the capture)
            pending = self.pending[key] = _Pending(session, stream_id, number, time)
        if number not in pending.packets:
            pending.packets.append(number)
        if kind in (1, 9):
            names = [_text(r) for r in _values(layer, "http2_http2_header_name_raw")]
            values = [_text(r) for r in _values(layer, "http2_http2_header_value_raw")]
            pending.headers.extend(zip(names, values, strict=False))
            if _first(layer, "http2_http2_flags_eh") is not False:
                pending.headers_done = True
        else:
            data = _hex(_first(layer, "http2_http2_data_data_raw"))
            pending.body_size += len(data)
            room = MAX_BODY - len(pending.body)
            if room > 0:
                pending.body += data[:room]
                self.pending_bytes += min(room, len(data))
        if _first(layer, "http2_http2_flags_end_stream") is True:
            pending.ended = True
        if pending.ended and pending.headers_done:
            self._finish(key)
        elif self.pending_bytes > MAX_PENDING_BYTES:
            oldest = next(iter(self.pending))
            self._finish(oldest, incomplete="memory bound reached before END_STREAM")

    def _finish(self, key: tuple[int, int], incomplete: str | None = None) -> None:
        pending = self.pending.pop(key)
        self.pending_bytes -= len(pending.body)
        session = pending.session
        pseudo = {k: v for k, v in pending.headers if k.startswith(":")}
        headers = [(k, v) for k, v in pending.headers if not k.startswith(":")]
        host, port = _authority(pseudo.get(":authority", "") or _header(headers, "host"))
        record = {
            **self._base(session, pending.first_packet, pending.time),
            "packets": pending.packets,
            "event": "request",
            "tls": session.tls(),
            "proto": "HTTP/2.0",
            "h2_stream": pending.stream_id,
            "method": pseudo.get(":method", ""),
            "scheme": pseudo.get(":scheme", "https"),
            "host": host or session.sni or session.server,
            "port": self._port(session, port),
            "path": pseudo.get(":path", ""),
            "headers": [[k, v] for k, v in headers],
            "body": decode_body(
                bytes(pending.body),
                _header(headers, "content-type"),
                _header(headers, "content-encoding"),
            ),
        }
        if pending.body_size > len(pending.body):
            record["body"]["size"] = pending.body_size
        if incomplete:
            record["incomplete"] = incomplete
        self._emit(session, record)

    def _tcp_message(self, session: Session, data: bytes, number: int, time: float) -> None:
        record = {
            **self._base(session, number, time),
            "event": "tcp-message",
            "from_client": True,
            "tls": session.tls(),
            "host": (session.connect or "").rpartition(":")[0] or session.sni or session.server,
            "port": self._port(session, None),
            "body": decode_body(data),
        }
        self._emit(session, record)

    def _emit(self, session: Session, record: dict[str, Any]) -> None:
        session.messages += 1
        self.result.messages += 1
        self.emit(record)

    def close(self) -> Extraction:
        """Flush HTTP/2 requests the capture ended inside of."""
        for key in list(self.pending):
            self._finish(key, incomplete="the connection or the capture ended before END_STREAM")
        if self.unread_times:
            frames = ", ".join(map(str, self.unread_frames))
            unnamed = self.unread_times - len(self.unread_frames)
            more = f" and {unnamed} more" if unnamed else ""
            self.result.notes.append(
                f"{self.unread_times} packets' times are in a form tshark never printed"
                f" before ({self.unread_time!r}): frames {frames}{more}; their messages have"
                " time 0"
            )
        return self.result


def _numbers(layers: Sequence[Mapping[str, Any]], key: str) -> set[int]:
    """The values of `key` that are numbers, in decimal or in hex ("0x0016"): Wireshark 4.6
    prints in decimal what earlier ones printed in hex, in EK output."""
    return {n for layer in layers for v in _values(layer, key) if (n := _int(v)) is not None}


def tls_version_name(printed: Any) -> str:
    """A TLS version as tshark prints it ("0x0304" before Wireshark 4.6, "772" since) by its
    name ("TLSv1.3"); any other version in hex ("0x7f1c"), anything else as printed."""
    number = _int(printed)
    if number is None or not 0 <= number <= 0xFFFF:
        return str(printed)
    return TLS_VERSIONS.get(number, f"0x{number:04x}")


def _values_all(layers: Sequence[Mapping[str, Any]], key: str) -> list[str]:
    return [str(v) for layer in layers for v in _values(layer, key)]


def _header(headers: Sequence[tuple[str, str]], name: str) -> str:
    return next((v for k, v in headers if k.lower() == name), "")


def _authority(authority: str) -> tuple[str, int | None]:
    authority = authority.strip()
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit() and not host.endswith(":"):
        return host.strip("[]").lower(), int(port)
    return authority.strip("[]").lower(), None


def tls_ports(flows: Sequence[TlsFlow]) -> list[int]:
    """Server ports of the target's direct TLS flows (tshark is told they carry TLS)."""
    return sorted({f.server_port for f in flows if f.transport == "tcp" and not f.connect})


def extract(
    capture: Path,
    capture_index: int,
    capture_name: str,
    keylog: Path | None,
    targets: frozenset[str],
    flows: FlowIndex | None,
    emit: Emit,
    ports: Sequence[int] = (),
    cut: Subset | None = None,
) -> Extraction:
    """Decrypt one capture (or its cut-down copy `cut`) with tshark and emit each message the
    target sent, numbered as the capture's packets."""
    extractor = Extractor(capture_index, capture_name, targets, flows, emit, cut)
    argv = tshark_argv(cut.path if cut else capture, keylog, sorted(targets), ports)
    for layers in run_tshark(argv, extractor.result.problems):
        extractor.packet(layers)
    return extractor.close()
