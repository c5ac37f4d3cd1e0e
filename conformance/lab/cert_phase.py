"""The HY-CERT phase of a hybrid lab run: impostors answer the target's cloud connection.

After the judged window, impostor TLS servers (conformance.lab.impostor_servers) start in the
internet namespace, one address per certificate kind, and a DNAT rule in the router sends the
target's connections for api.imagicle.com:443 to each in turn while the admin workstation asks
the target for a licence refresh. The phase has its own capture (evidence beside the judged
one, like the perimeter probes: the harness's active traffic stays out of the judged capture,
decision 7); the impostors' per-connection log is what HY-CERT judges.

With a proxy, the target's CONNECT tunnels meet the impostors: squid's own connection to
api.imagicle.com:443 is the one redirected, the TLS inside the tunnel is the target's, and the
phase's capture is taken on the on-prem segment's bridge, where both the target's CONNECT to
the proxy and the proxy's connection out show (the impostors log the proxy as their client).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from conformance.evidence.interface import IMPOSTOR_CAPTURE, IMPOSTOR_LOG
from conformance.lab import topology as topo
from conformance.lab.certs import IMPOSTOR_CERTS, LabCA
from conformance.lab.dumpcap import Capture
from conformance.lab.impostor_servers import READ_SECONDS
from conformance.lab.netns import LabState, in_netns, run
from conformance.lab.services import Evidence

# One address per kind on the internet segment, none used by any other lab host.
IMPOSTOR_V4: Final = {kind: f"203.0.113.{41 + i}" for i, kind in enumerate(IMPOSTOR_CERTS)}
WAIT_PER_KIND: Final = 4.0  # seconds to wait for the target's connection to each impostor
ONPREM_BRIDGE: Final = "br0"  # the on-prem segment's bridge (network.py), the proxy's link


def _nat_rule(address: str) -> str:
    # One nft transaction replaces the previous impostor's rule: no gap in which a new
    # connection could reach the real stand-in unlogged.
    return f"""
table ip ucx_hold
delete table ip ucx_hold
table ip ucx_impostor
delete table ip ucx_impostor
table ip ucx_impostor {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {topo.API_V4} tcp dport 443 dnat to {address}
  }}
}}
"""


# While no impostor answers but the phase's capture runs, new connections to the cloud name
# are dropped (unanswered SYNs are not accepted connections): every connection the capture
# shows reaching that address is then one an impostor logged. Before destination NAT
# (priority -100), after conntrack (-200), so it touches new connections only.
_HOLD_RULE: Final = f"""
table ip ucx_hold {{
  chain prerouting {{
    type filter hook prerouting priority -150; policy accept;
    ip daddr {topo.API_V4} tcp dport 443 ct state new drop
  }}
}}
"""


def _connections(log: Path, kind: str) -> int:
    if not log.exists():
        return 0
    count = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            count += json.loads(line).get("kind") == kind
        except ValueError:
            continue
    return count


def run_impostor_phase(
    state: LabState,
    ns: topo.Namespaces,
    workdir: Path,
    ca: LabCA,
    evidence: Evidence,
    python_argv: Callable[..., list[str]],
    *,
    proxied: bool = False,
) -> list[str]:
    """Meet the target (through the proxy when `proxied`) with every impostor in turn;
    return notes for the report."""
    notes: list[str] = []
    log = workdir / "impostors.jsonl"
    config = {
        "log": str(log),
        "ready": str(workdir / "impostors.ready"),
        "impostors": [],
    }
    for kind, address in IMPOSTOR_V4.items():
        run(in_netns(ns.internet, ["ip", "addr", "add", f"{address}/32", "dev", "eth0"]))
        pair = ca.impostor(kind, (topo.API_NAME,))
        config["impostors"].append(  # type: ignore[attr-defined]
            {
                "kind": kind,
                "address": address,
                "port": 443,
                "cert": str(pair.chain),
                "key": str(pair.key),
            }
        )
    conf = workdir / "impostors.json"
    conf.write_text(json.dumps(config, indent=2))
    out = (workdir / "impostors.out").open("ab")
    try:
        proc = state.spawn(
            "impostors",
            in_netns(ns.internet, python_argv("conformance.lab.impostor_servers", str(conf))),
            stdout=out,
            stderr=out,
        )
    finally:
        out.close()
    deadline = time.monotonic() + 10
    while not (workdir / "impostors.ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (workdir / "impostors.out").read_text(errors="replace")[-300:]
            notes.append(f"HY-CERT impostors did not start: {tail}")
            return notes
        time.sleep(0.05)
    # Held from before the capture starts until the first impostor answers (see _HOLD_RULE).
    run(in_netns(ns.router, ["nft", "-f", "-"]), stdin=_HOLD_RULE)
    # Where the connections the impostors answer start: the target's link, or with a proxy
    # the on-prem bridge (the proxy's address is on it, so its traffic shows there).
    namespace, link = (ns.onprem, ONPREM_BRIDGE) if proxied else (ns.target, topo.TARGET_LINK)
    capture = Capture(state, namespace, link, workdir / "capture-impostors.pcapng")
    refresh = f"http://{topo.TARGET_V4}:{topo.ADMIN_PORT}/actions/licence-refresh"
    try:
        for kind, address in IMPOSTOR_V4.items():
            run(in_netns(ns.router, ["nft", "-f", "-"]), stdin=_nat_rule(address))
            run(
                in_netns(
                    ns.onprem,
                    python_argv("conformance.lab.stimuli", "http", "POST", refresh, topo.ADMIN_V4),
                ),
                check=False,
            )
            until = time.monotonic() + WAIT_PER_KIND
            while _connections(log, kind) == 0 and time.monotonic() < until:
                time.sleep(0.1)
            # Let the connection finish (the impostor waits up to 2 s for application data).
            time.sleep(0.3)
            if _connections(log, kind) == 0:
                notes.append(f"HY-CERT: the target never reached the {kind} impostor")
    finally:
        # HY-CERT cross-checks the log with the capture, so no connection may reach an
        # impostor unseen, or the stand-in unlogged: hold new connections (dropped SYNs are
        # not accepted ones), stop the capture, let the last impostor log what it holds.
        run(in_netns(ns.router, ["nft", "-f", "-"]), stdin=_HOLD_RULE, check=False)
        run(in_netns(ns.router, ["nft", "delete", "table", "ip", "ucx_impostor"]), check=False)
        summary = capture.stop()
        time.sleep(READ_SECONDS + 0.5)
        run(in_netns(ns.router, ["nft", "delete", "table", "ip", "ucx_hold"]), check=False)
    evidence.add(log, "lab/impostors.jsonl", IMPOSTOR_LOG)
    evidence.add(
        workdir / "capture-impostors.pcapng", "lab/capture-impostors.pcapng", IMPOSTOR_CAPTURE
    )
    via = " through the proxy's CONNECT tunnels" if proxied else ""
    notes.append(
        "HY-CERT phase after the judged window: impostors "
        + ", ".join(f"{k} at {a}" for k, a in IMPOSTOR_V4.items())
        + f" answered api.imagicle.com:443{via} in turn (own capture: {summary or 'stopped'})"
    )
    return notes
