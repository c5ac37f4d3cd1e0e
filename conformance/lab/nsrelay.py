"""`ssh -o ProxyCommand`: connect from inside a lab namespace and relay stdin/stdout.

Run as `ip netns exec NS python -m conformance.lab.nsrelay HOST PORT [SOURCE]`. The harness
lives outside the lab's namespaces (nothing routes into them), so an ssh client reaches the
lab target through this relay, from the admin workstation's address.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading


def _pump_in(sock: socket.socket) -> None:
    try:
        while chunk := os.read(0, 65536):
            sock.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)


def main(argv: list[str]) -> int:
    host, port = argv[0], int(argv[1])
    source = argv[2] if len(argv) > 2 else None
    sock = socket.create_connection(
        (host, port), timeout=5, source_address=(source, 0) if source else None
    )
    sock.settimeout(None)
    threading.Thread(target=_pump_in, args=(sock,), daemon=True).start()
    while chunk := sock.recv(65536):
        os.write(1, chunk)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
