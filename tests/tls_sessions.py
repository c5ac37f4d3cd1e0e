"""Real TLS sessions for tests, framed into a capture: the target's side writes its key log.

Python's `ssl` runs both ends over memory BIOs (no socket, no network namespace, no capture
privileges): the client context has `keylog_filename` set, exactly as a product honouring
SSLKEYLOGFILE writes it, the server presents a certificate of the lab CA
(conformance.lab.certs). HTTP/1.1 is written by hand, HTTP/2 by the `h2` library on both
sides. The TLS bytes each side produced are then cut into TCP segments between documentation
addresses (target 192.0.2.10 -> 198.51.100.x:443, or through the proxy 192.0.2.80:3128 with a
CONNECT first) and written as a pcap. Deterministic apart from the TLS randoms and keys.

    sessions = SessionFactory(tmp_path)
    one = sessions.http1("api.imagicle.com", [post("/v1/telemetry/beat", beat())])
    two = sessions.h2("grpc.imagicle.com", [grpc("/x.v1.Presence/Subscribe", {...})])
    write_sessions(tmp_path / "cap.pcap", [one, two])   # sessions.keylog holds their keys
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.lab.certs import LabCA
from tests.capture_files import write_pcap

TARGET = "192.0.2.10"
TARGET_MAC = "02:00:00:00:00:10"
GATEWAY_MAC = "02:00:00:00:00:01"
PROXY = "192.0.2.80"
PROXY_PORT = 3128
SERVERS = {
    "api.imagicle.com": "198.51.100.7",
    "grpc.imagicle.com": "198.51.100.8",
    "ldaps.imagicle.cloud": "198.51.100.9",
    "updates.example.net": "203.0.113.50",
}
START = 1_700_000_000.0
MSS = 1400


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the client sends it."""

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


def post(path: str, body: Any, content_type: str = "application/json") -> Request:
    """A POST with `body` as JSON (bytes are sent as they are)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request("POST", path, data, (("content-type", content_type),))


def grpc(path: str, message: Any) -> Request:
    """A unary gRPC call: one length-prefixed message (JSON, or bytes as given)."""
    data = message if isinstance(message, bytes) else json.dumps(message).encode()
    return Request(
        "POST",
        path,
        b"\0" + len(data).to_bytes(4, "big") + data,
        (("content-type", "application/grpc"), ("te", "trailers")),
    )


@dataclass
class Session:
    """The bytes of one TCP connection: (from the client?, bytes) in the order sent."""

    server_name: str
    server: tuple[str, int]
    client_port: int
    chunks: list[tuple[bool, bytes]] = field(default_factory=list)
    via_proxy: bool = False
    requests: list[Request] = field(default_factory=list)  # what it carried (HTTP)
    proto: str = ""  # "HTTP/1.1" | "HTTP/2.0" | "" (raw)
    span: tuple[float, float] = (0.0, 0.0)  # first and last packet time, once framed


class _Tls:
    """Both ends of one TLS session over memory BIOs; `chunks` gets every byte on the wire."""

    def __init__(
        self,
        client_ctx: ssl.SSLContext,
        server_ctx: ssl.SSLContext,
        sni: str | None,
        chunks: list[tuple[bool, bytes]],
    ) -> None:
        self.c_in, self.c_out, self.s_in, self.s_out = (ssl.MemoryBIO() for _ in range(4))
        self.client = client_ctx.wrap_bio(self.c_in, self.c_out, server_hostname=sni)
        self.server = server_ctx.wrap_bio(self.s_in, self.s_out, server_side=True)
        self.chunks = chunks
        done_c = done_s = False
        while not (done_c and done_s):
            done_c = done_c or self._step(self.client)
            self.pump()
            done_s = done_s or self._step(self.server)
            self.pump()

    @staticmethod
    def _step(end: ssl.SSLObject) -> bool:
        try:
            end.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def pump(self) -> None:
        moved = True
        while moved:
            moved = False
            if data := self.c_out.read():
                self.chunks.append((True, data))
                self.s_in.write(data)
                moved = True
            if data := self.s_out.read():
                self.chunks.append((False, data))
                self.c_in.write(data)
                moved = True

    def send(self, from_client: bool, data: bytes) -> None:
        (self.client if from_client else self.server).write(data)
        self.pump()

    def receive(self, at_client: bool) -> bytes:
        end = self.client if at_client else self.server
        out = b""
        while True:
            try:
                chunk = end.read(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return out
            if not chunk:
                return out
            out += chunk


class SessionFactory:
    """Makes TLS sessions whose client writes `keylog` (None: a session without keys)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.keylog = directory / "sslkeylog.txt"
        self.ca = LabCA(directory / "pki")
        self._ports = iter(range(50000, 60000))
        self._server_ctx: dict[tuple[str, tuple[str, ...]], ssl.SSLContext] = {}

    def _server(self, name: str, alpn: tuple[str, ...]) -> ssl.SSLContext:
        key = (name, alpn)
        if key not in self._server_ctx:
            pair = self.ca.issue(name.replace(".", "-"), (name,))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pair.chain, pair.key)
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            self._server_ctx[key] = ctx
        return self._server_ctx[key]

    def _client(self, version: str, alpn: tuple[str, ...], keys: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca.ca_file))
        if keys:
            ctx.keylog_filename = str(self.keylog)
        if version == "1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx

    def _open(
        self,
        name: str,
        version: str,
        alpn: tuple[str, ...],
        keys: bool,
        via_proxy: bool,
        port: int = 443,
    ) -> tuple[Session, _Tls]:
        session = Session(
            name,
            (PROXY, PROXY_PORT) if via_proxy else (SERVERS[name], port),
            next(self._ports),
            via_proxy=via_proxy,
        )
        if via_proxy:
            connect = f"CONNECT {name}:{port} HTTP/1.1\r\nHost: {name}:{port}\r\n\r\n"
            session.chunks.append((True, connect.encode()))
            session.chunks.append((False, b"HTTP/1.1 200 Connection established\r\n\r\n"))
        tls = _Tls(
            self._client(version, alpn, keys), self._server(name, alpn), name, session.chunks
        )
        return session, tls

    def raw(
        self,
        name: str,
        messages: Sequence[bytes],
        *,
        port: int = 443,
        version: str = "1.3",
        keys: bool = True,
        via_proxy: bool = False,
    ) -> Session:
        """A TLS session carrying `messages` from the client (no ALPN), each answered b"ok";
        no messages: the handshake alone."""
        session, tls = self._open(name, version, (), keys, via_proxy, port)
        for message in messages:
            tls.send(True, message)
            tls.receive(at_client=False)
            tls.send(False, b"ok")
            tls.receive(at_client=True)
        return session

    def hello_only(self, name: str, *, keys: bool = True) -> Session:
        """A connection where the target sends its ClientHello and nothing after it (the
        server never answers: a handshake that did not complete)."""
        session = Session(name, (SERVERS[name], 443), next(self._ports))
        bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = self._client("1.3", (), keys).wrap_bio(bio_in, bio_out, server_hostname=name)
        with contextlib.suppress(ssl.SSLWantReadError):
            client.do_handshake()
        session.chunks.append((True, bio_out.read()))
        return session

    def http1(
        self,
        name: str,
        requests: Sequence[Request],
        *,
        version: str = "1.3",
        keys: bool = True,
        via_proxy: bool = False,
        chunked: bool = False,
        port: int = 443,
    ) -> Session:
        """HTTP/1.1 requests on one keep-alive connection, each answered 200."""
        session, tls = self._open(name, version, ("http/1.1",), keys, via_proxy, port)
        session.requests, session.proto = list(requests), "HTTP/1.1"
        for request in requests:
            head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {name}"]
            head += [f"{k}: {v}" for k, v in request.headers]
            if chunked:
                head.append("Transfer-Encoding: chunked")
                half = len(request.body) // 2
                parts = [request.body[:half], request.body[half:]]
                body = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts if p)
                body += b"0\r\n\r\n"
            else:
                head.append(f"Content-Length: {len(request.body)}")
                body = request.body
            tls.send(True, ("\r\n".join(head) + "\r\n\r\n").encode() + body)
            tls.receive(at_client=False)
            tls.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            tls.receive(at_client=True)
        return session

    def h2(
        self,
        name: str,
        requests: Sequence[Request],
        *,
        version: str = "1.3",
        keys: bool = True,
        via_proxy: bool = False,
        cut: bool = False,
    ) -> Session:
        """HTTP/2 requests on one connection (streams 1, 3, ...), each answered 200 (gRPC:
        with grpc-status trailers). `h2` runs both sides. `cut`: the last request's body is
        half sent and the connection goes quiet (a capture that ends inside it)."""
        import h2.config
        import h2.connection

        session, tls = self._open(name, version, ("h2",), keys, via_proxy)
        session.requests, session.proto = list(requests), "HTTP/2.0"
        client = h2.connection.H2Connection()
        server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        client.initiate_connection()
        server.initiate_connection()
        tls.send(True, client.data_to_send())
        server.receive_data(tls.receive(at_client=False))
        tls.send(False, server.data_to_send())
        client.receive_data(tls.receive(at_client=True))
        for number, request in enumerate(requests):
            stream = 1 + 2 * number
            last = number == len(requests) - 1
            headers = [
                (":method", request.method),
                (":scheme", "https"),
                (":authority", name),
                (":path", request.path),
                *request.headers,
            ]
            client.send_headers(stream, headers, end_stream=not request.body)
            if cut and last:
                client.send_data(stream, request.body[: len(request.body) // 2])
                tls.send(True, client.data_to_send())
                break
            if request.body:
                client.send_data(stream, request.body, end_stream=True)
            tls.send(True, client.data_to_send())
            server.receive_data(tls.receive(at_client=False))
            grpc_call = any(v == "application/grpc" for _, v in request.headers)
            server.send_headers(stream, [(":status", "200")], end_stream=not grpc_call)
            if grpc_call:
                server.send_headers(stream, [("grpc-status", "0")], end_stream=True)
            tls.send(False, server.data_to_send())
            client.receive_data(tls.receive(at_client=True))
            tls.send(True, client.data_to_send())  # acknowledgements, window updates
            server.receive_data(tls.receive(at_client=False))
        return session


def _frames(session: Session, start: float) -> tuple[list[tuple[float, bytes]], float]:
    """The session as Ethernet frames: handshake, data segments (acked), FIN both ways."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    client = (TARGET, session.client_port)
    server = session.server
    seq = {True: 1000, False: 5000}
    t = start
    out: list[tuple[float, bytes]] = []

    def send(from_client: bool, flags: str, payload: bytes = b"") -> None:
        nonlocal t
        src, dst = (client, server) if from_client else (server, client)
        macs = (TARGET_MAC, GATEWAY_MAC) if from_client else (GATEWAY_MAC, TARGET_MAC)
        ack = 0 if flags == "S" else seq[not from_client]
        packet = (
            Ether(src=macs[0], dst=macs[1])
            / IP(src=src[0], dst=dst[0])
            / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq[from_client], ack=ack)
        )
        if payload:
            packet = packet / Raw(payload)
        t += 0.001
        out.append((t, bytes(packet)))
        seq[from_client] += len(payload) + (1 if "S" in flags or "F" in flags else 0)

    send(True, "S")
    send(False, "SA")
    send(True, "A")
    for from_client, data in session.chunks:
        for i in range(0, len(data), MSS):
            send(from_client, "PA", data[i : i + MSS])
        send(not from_client, "A")
    send(True, "FA")
    send(False, "FA")
    send(True, "A")
    session.span = (out[0][0], out[-1][0])
    return out, t


def plaintext(name: str, data: bytes, port: int = 80) -> Session:
    """A TCP connection carrying `data` from the client in clear, answered 200."""
    session = Session(name, (SERVERS[name], port), 40000 + port)
    session.chunks = [(True, data), (False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]
    return session


def session_frames(sessions: Sequence[Session], start: float = START) -> list[tuple[float, bytes]]:
    """Every session's frames, one session after the other, 0.1 s apart."""
    frames: list[tuple[float, bytes]] = []
    t = start
    for session in sessions:
        more, t = _frames(session, t)
        frames += more
        t += 0.1
    return frames


def write_sessions(path: Path, sessions: Sequence[Session], start: float = START) -> Path:
    """A pcap of the sessions (Ethernet, microsecond times)."""
    return write_pcap(path, session_frames(sessions, start))


def har_document(sessions: Sequence[Session], creator: str = "mitmproxy") -> dict[str, Any]:
    """A HAR 1.2 log of the sessions' HTTP requests, as an intercepting proxy exports it
    (call after the sessions were framed: their times come from the capture)."""
    from datetime import UTC, datetime

    entries = []
    for session in sessions:
        for number, request in enumerate(session.requests):
            started = datetime.fromtimestamp(session.span[0] + 0.005 + number * 0.002, UTC)
            headers = [{"name": "host", "value": session.server_name}]
            headers += [{"name": k, "value": v} for k, v in request.headers]
            post: dict[str, Any] | None = None
            if request.body:
                mime = dict(request.headers).get("content-type", "")
                try:
                    post = {"mimeType": mime, "text": request.body.decode()}
                except UnicodeDecodeError:
                    post = {
                        "mimeType": mime,
                        "text": base64.b64encode(request.body).decode(),
                        "encoding": "base64",
                    }
            entry: dict[str, Any] = {
                "startedDateTime": started.isoformat().replace("+00:00", "Z"),
                "time": 3.5,
                "request": {
                    "method": request.method,
                    "url": f"https://{session.server_name}{request.path}",
                    "httpVersion": session.proto,
                    "headers": headers,
                    "queryString": [],
                    "headersSize": -1,
                    "bodySize": len(request.body),
                    **({"postData": post} if post else {}),
                },
                "response": {"status": 200, "headers": [], "content": {"size": 0}},
                "cache": {},
                "timings": {"send": 0, "wait": 3, "receive": 0.5},
            }
            if not session.via_proxy:
                entry["serverIPAddress"] = session.server[0]
            entries.append(entry)
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": creator, "version": "11.0"},
            "entries": entries,
        }
    }
