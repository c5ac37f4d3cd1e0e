"""The HY-ENDPOINT phase of a hybrid lab run: sslyze scans of the cloud endpoints.

Runs after the judged capture stopped, from the target's namespace (the site's position),
against every lab cloud name that the profile's `cloud.endpoints` allow, by address, so
sslyze makes no DNS query of its own. Through the proxy when the profile has one.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Final

from conformance.evidence.interface import ENDPOINT_SCAN
from conformance.lab import topology as topo
from conformance.lab.netns import in_netns
from conformance.lab.services import Evidence
from conformance.names import matches
from conformance.profile_model import Profile

LAB_CLOUD: Final = (
    (topo.API_NAME, topo.API_V4),
    (topo.GRPC_NAME, topo.GRPC_V4),
    (topo.LDAPS_NAME, topo.LDAPS_V4),
)
SCAN_TIMEOUT: Final = 90.0


def scan_targets(profile: Profile) -> list[dict[str, object]]:
    """The lab endpoints the profile allows over TCP: name, port and address for sslyze.

    `/udp` (QUIC) endpoints are not scanned: sslyze speaks TLS over TCP only.
    """
    if profile.cloud is None:
        return []
    found: list[dict[str, object]] = []
    for endpoint in profile.cloud.endpoints:
        if endpoint.transport != "tcp":
            continue
        for name, address in LAB_CLOUD:
            if matches(endpoint.pattern, name):
                entry: dict[str, object] = {"name": name, "port": endpoint.port, "address": address}
                if entry not in found:
                    found.append(entry)
    return found


def run_endpoint_scan(
    profile: Profile,
    target_ns: str,
    workdir: Path,
    ca_file: Path,
    evidence: Evidence,
    python_argv: Callable[..., list[str]],
) -> list[str]:
    """Scan; register the results as ENDPOINT_SCAN; return notes for the report."""
    targets = scan_targets(profile)
    if not targets:
        return ["HY-ENDPOINT: the profile allows no lab cloud endpoint: nothing scanned"]
    output = workdir / "endpoint-scan.json"
    config = workdir / "endpoint-scan-config.json"
    config.write_text(
        json.dumps(
            {
                "endpoints": targets,
                "ca_file": str(ca_file),
                "output": str(output),
                "proxy": str(profile.proxy) if profile.proxy is not None else None,
            }
        )
    )
    log = workdir / "endpoint-scan.out"
    with log.open("ab") as handle:
        try:
            subprocess.run(
                in_netns(target_ns, python_argv("conformance.lab.endpoint_scan", str(config))),
                stdout=handle,
                stderr=handle,
                timeout=SCAN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [f"HY-ENDPOINT: the scan did not finish in {SCAN_TIMEOUT:g} s"]
    if not output.exists():
        tail = log.read_text(errors="replace")[-300:]
        return [f"HY-ENDPOINT: the scan failed: {tail}"]
    evidence.add(output, "lab/endpoint-scan.json", ENDPOINT_SCAN)
    return [f"HY-ENDPOINT: sslyze scanned {len(targets)} endpoint(s) after the capture window"]
