"""HY-CERT impostors: TLS servers with certificates the target must refuse (docs/hybrid.md).

Run as `python -m conformance.lab.impostor_servers CONFIG` in the lab's internet namespace. One
listener per certificate kind; every connection becomes one JSON line of the log: the kind,
the peer, whether the TLS handshake completed, and how many bytes of application data arrived
after it (decision 3: the criterion is application data, measured here; a completed
handshake followed by a silent close passes).
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

READ_SECONDS = 2.0  # how long to wait for application data after the handshake
_LOCK = threading.Lock()


def _log(path: Path, entry: dict[str, Any]) -> None:
    with _LOCK, path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def _serve_one(
    conn: socket.socket,
    peer: tuple[str, int],
    kind: str,
    server: str,
    context: ssl.SSLContext,
    log: Path,
) -> None:
    entry: dict[str, Any] = {
        "time": time.time(),
        "kind": kind,
        "client": f"{peer[0]}:{peer[1]}",
        "server": server,
        "handshake": False,
        "app_data_bytes": 0,
        "first_bytes": "",
        "error": None,
    }
    conn.settimeout(READ_SECONDS)
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            entry["handshake"] = True
            entry["version"] = tls.version()
            received = b""
            try:
                while chunk := tls.recv(4096):
                    received += chunk
                    if len(received) > 65536:
                        break
            except (TimeoutError, ssl.SSLError, OSError) as exc:
                entry["after_handshake"] = type(exc).__name__
            entry["app_data_bytes"] = len(received)
            entry["first_bytes"] = received[:80].decode("ascii", "backslashreplace")
    except (ssl.SSLError, OSError) as exc:
        entry["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        conn.close()
    _log(log, entry)


def _listen(kind: str, address: str, port: int, cert: str, key: str, log: Path) -> socket.socket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers(
        "ALL:@SECLEVEL=0"
    )  # present even the weak key; refusing is the client's job
    context.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(16)

    def accept_loop() -> None:
        while True:
            conn, peer = listener.accept()
            threading.Thread(
                target=_serve_one,
                args=(conn, peer, kind, f"{address}:{port}", context, log),
                daemon=True,
            ).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return listener


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    log = Path(config["log"])
    log.touch()
    listeners = [
        _listen(item["kind"], item["address"], item["port"], item["cert"], item["key"], log)
        for item in config["impostors"]
    ]
    Path(config["ready"]).write_text("ready\n")
    try:
        while True:
            time.sleep(3600)
    finally:
        for listener in listeners:
            listener.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
