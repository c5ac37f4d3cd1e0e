"""How fast can the lab's live capture go without dropping? `python benchmarks/capture_rate.py`.

Builds two throw-away namespaces joined by a veth (root needed), captures the receiving end
with the lab's own Capture (dumpcap, 64 MiB buffer), and blasts UDP packets at increasing
rates, each step bounded in time and count. Prints, per step, what was sent, captured and
dropped (dumpcap's pcap statistics), then the highest rate captured with zero drops. The
lab's target sends a few hundred packets per second; the goal is >= 100k packets/s.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conformance.lab.dumpcap import Capture  # noqa: E402
from conformance.lab.netns import LabState, check_host, clean_stale, in_netns, ip_batch  # noqa: E402
from conformance.lab.topology import PREFIX  # noqa: E402

STEP_SECONDS = 2.0  # long enough to fill dumpcap's buffer if it cannot keep up
MAX_PACKETS = 2_000_000  # hard bound per step, whatever the requested rate
RATES = (25_000, 50_000, 100_000, 200_000, 400_000)
SENDER = "198.51.100.1"
RECEIVER = "198.51.100.2"

BLASTER = r"""
import socket, sys, time
rate, seconds, limit = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
payload, dest = b"x" * 64, (sys.argv[4], 9)
sent, start = 0, time.perf_counter()
total = min(limit, int(rate * seconds))
while sent < total:
    due = int((time.perf_counter() - start) * rate) + 1
    while sent < min(due, total):
        try:
            s.sendto(payload, dest)
            sent += 1
        except BlockingIOError:
            break
print(sent, time.perf_counter() - start)
"""


def _summary_counts(summary: str) -> tuple[int, int]:
    found = re.search(r"received/dropped on interface '[^']*': (\d+)/(\d+)", summary)
    if found is None:
        return -1, -1
    return int(found[1]), int(found[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="*", default=list(RATES))
    args = parser.parse_args()
    check_host()
    clean_stale()
    state = LabState.new()
    tx, rx = f"{PREFIX}{state.run_id}-bench-tx", f"{PREFIX}{state.run_id}-bench-rx"
    best = 0
    try:
        state.add_namespace(tx, None)
        state.add_namespace(rx, None)
        ip_batch(None, [f"link add eth0 netns {tx} type veth peer name eth0 netns {rx}"])
        ip_batch(tx, [f"address add {SENDER}/24 dev eth0", "link set eth0 up"])
        ip_batch(rx, [f"address add {RECEIVER}/24 dev eth0", "link set eth0 up"])
        # The receiver drops the datagrams itself, so no ICMP replies muddy the count.
        subprocess.run(
            in_netns(rx, ["nft", "-f", "-"]),
            input="table inet bench {\n chain in {\n  type filter hook input priority 0;\n"
            "  udp dport 9 drop\n }\n}\n",
            text=True,
            check=True,
        )
        print(f"{'requested/s':>12} {'sent':>9} {'sent/s':>9} {'captured':>9} {'dropped':>8}")
        with tempfile.TemporaryDirectory(prefix="ucxl-bench-") as tmp:
            for rate in args.rates:
                capture = Capture(state, rx, "eth0", Path(tmp) / f"rate-{rate}.pcapng")
                done = subprocess.run(
                    in_netns(
                        tx,
                        [
                            sys.executable,
                            "-c",
                            BLASTER,
                            str(rate),
                            str(STEP_SECONDS),
                            str(MAX_PACKETS),
                            RECEIVER,
                        ],
                    ),
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=STEP_SECONDS * 10,
                )
                time.sleep(0.3)  # let the last packets reach the ring buffer
                received, dropped = _summary_counts(capture.stop())
                sent, took = done.stdout.split()
                achieved = int(sent) / float(took)
                print(f"{rate:>12} {sent:>9} {achieved:>9.0f} {received:>9} {dropped:>8}")
                if dropped == 0 and received >= int(sent):
                    best = max(best, int(achieved))
    finally:
        state.teardown()
    print(f"highest rate captured with zero drops: {best} packets/s")
    return 0 if best >= 100_000 else 1


if __name__ == "__main__":
    sys.exit(main())
