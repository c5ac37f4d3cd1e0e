"""The content-level interceptor: mitmproxy (11.0.x; 12.3 on Python 3.14), as a library, behind
the lab's proxy.

    target --CONNECT--> squid 192.0.2.80:3128 --cache_peer--> this, 192.0.2.80:3129 --> stand-ins

It terminates the target's TLS with certificates issued by the lab CA (which the target
trusts), records every request, response and raw TCP message as one JSON line
(DECRYPTED_REQUESTS, bodies decoded by conformance.decode.bodies: JSON, gRPC frames, a
schema-less protobuf walk), and forwards to the lab's cloud stand-ins only:
- `connection_strategy=lazy`: no upstream connection before the target has sent its request;
- `upstream_cert=false`: the certificate shown to the target is made from the SNI alone, so
  mitmproxy never connects upstream to copy a certificate;
- every upstream connection must name a host of `allowed_hosts` or an address in the
  documentation ranges (`server_connect` refuses anything else), and leaves from
  `connect_addr` (the proxy's address, the only on-prem address the perimeter lets out).

Run inside the on-prem namespace: `python -m conformance.lab.intercept CONFIG.json`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Final

from conformance.decode.bodies import decode_body

WARM_UP_HOST: Final = "warm-up.invalid"  # RFC 6761: never resolves, never forwarded
WARM_UP_TIMEOUT: Final = 8.0
DOCUMENTATION_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def _allowed(host: str, allowed_hosts: frozenset[str]) -> bool:
    host = host.lower().rstrip(".")
    if host in allowed_hosts:
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return any(address in n for n in DOCUMENTATION_NETWORKS if n.version == address.version)


def _tls(conn: Any) -> dict[str, Any] | None:
    if not getattr(conn, "tls_established", False):
        return None
    alpn = conn.alpn.decode(errors="replace") if conn.alpn else None
    return {"sni": conn.sni, "version": conn.tls_version, "alpn": alpn}


def _headers(headers: Any) -> list[list[str]]:
    return [[k, v] for k, v in headers.items(multi=True)]


class Recorder:
    """mitmproxy addon: one JSON line per request, response, error and TCP message."""

    def __init__(self, log: Path, allowed_hosts: frozenset[str]) -> None:
        self.file = log.open("a", buffering=1)
        self.lock = threading.Lock()
        self.allowed_hosts = allowed_hosts

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"t": round(time.time(), 3), "event": event, **fields}, default=str)
        with self.lock:
            self.file.write(line + "\n")

    def _base(self, flow: Any) -> dict[str, Any]:
        client = flow.client_conn
        return {
            "id": flow.id,
            "client": client.peername[0] if client.peername else None,
            "tls": _tls(client),
        }

    # --- hooks ---------------------------------------------------------------------------

    def server_connect(self, data: Any) -> None:
        host, port = data.server.address
        if not _allowed(str(host), self.allowed_hosts):
            data.server.error = f"the lab interceptor forwards to the lab only, not {host}:{port}"
            self.write("refused-upstream", host=host, port=port)

    def http_connect(self, flow: Any) -> None:
        request = flow.request
        self.write(
            "warm-up" if request.host == WARM_UP_HOST else "connect",
            **self._base(flow),
            connect=f"{request.host}:{request.port}",
            headers=_headers(request.headers),
        )

    def request(self, flow: Any) -> None:
        request = flow.request
        self.write(
            "request",
            **self._base(flow),
            proto=request.http_version,
            method=request.method,
            scheme=request.scheme,
            host=request.pretty_host,
            port=request.port,
            path=request.path,
            headers=_headers(request.headers),
            body=decode_body(
                request.raw_content or b"",
                request.headers.get("content-type", ""),
                request.headers.get("content-encoding", ""),
            ),
        )

    def response(self, flow: Any) -> None:
        response = flow.response
        self.write(
            "response",
            id=flow.id,
            status=response.status_code,
            headers=_headers(response.headers),
            trailers=_headers(response.trailers) if response.trailers else [],
            body=decode_body(
                response.raw_content or b"",
                response.headers.get("content-type", ""),
                response.headers.get("content-encoding", ""),
            ),
        )

    def error(self, flow: Any) -> None:
        self.write("error", id=flow.id, error=str(flow.error))

    def tcp_message(self, flow: Any) -> None:
        message = flow.messages[-1]
        server = flow.server_conn
        host, port = server.address if server.address else (None, None)
        self.write(
            "tcp-message",
            **self._base(flow),
            from_client=message.from_client,
            host=server.sni or host,
            port=port,
            body=decode_body(message.content),
        )

    def tls_failed_client(self, data: Any) -> None:
        conn = data.conn
        self.write(
            "tls-failed",
            client=conn.peername[0] if conn.peername else None,
            sni=conn.sni,
            error=str(conn.error),
        )


async def _serve(config: dict[str, Any]) -> None:
    from mitmproxy import options
    from mitmproxy.tools.dump import DumpMaster

    opts = options.Options(confdir=config["confdir"])
    master = DumpMaster(opts, with_termlog=False, with_dumper=False)
    recorder = Recorder(Path(config["log"]), frozenset(config["allowed_hosts"]))
    master.addons.add(recorder)  # type: ignore[no-untyped-call]
    # Addon options (connection_strategy, connect_addr, ...) exist once the addons are loaded.
    opts.update(  # type: ignore[no-untyped-call]
        listen_host=config["listen_host"],
        listen_port=int(config["listen_port"]),
        connection_strategy="lazy",
        upstream_cert=False,
        ssl_verify_upstream_trusted_ca=config["upstream_ca"],
        connect_addr=config.get("connect_addr"),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()


def warm_up(config: dict[str, Any]) -> None:
    """CONNECT through squid to ourselves until squid answers 200, then write the ready file.

    squid takes its parent into use only once it has "resolved" the parent's address, some
    time after it listens; until then it answers 500. The warm-up tunnel names an RFC 6761
    host: the interceptor (lazy) never connects upstream for it, and nothing is sent in it.
    """
    proxy = (config["proxy_host"], int(config["proxy_port"]))
    request = f"CONNECT {WARM_UP_HOST}:443 HTTP/1.1\r\nHost: {WARM_UP_HOST}:443\r\n\r\n"
    deadline = time.monotonic() + WARM_UP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(proxy, 1.0, (config["listen_host"], 0)) as sock:
                sock.sendall(request.encode())
                status = sock.recv(4096).split(b"\r\n", 1)[0]
            if b" 200" in status:
                Path(config["ready"]).write_text("ready\n")
                return
        except OSError:
            pass
        time.sleep(0.25)


def main() -> int:
    config = json.loads(Path(sys.argv[1]).read_text())
    logging.getLogger("passlib").setLevel(logging.ERROR)  # bcrypt version probe noise
    if config.get("ready"):
        threading.Thread(target=warm_up, args=(config,), daemon=True).start()
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
