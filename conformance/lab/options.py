"""The profile's lab-only sections (`lab:`, `probes:`), parsed into typed options.

lab:
  perimeter: closed        # closed | cloud | open (default: closed air-gapped, cloud hybrid)
  cloud_cert: valid        # valid | untrusted | expired | wrong-name (the cloud stand-ins')
  scanner: true            # the outside scanner tries to connect in (AG-INGRESS evidence)
  periods: {licensing: 4}  # seconds between the target's behaviours (see DEFAULT_PERIODS)
  intercept: auto          # the content-level interceptor behind the proxy: true | false | auto
                           # (auto: on when the profile has a proxy and cloud_cert is valid)
  tls_keylog: false        # the reference target writes its TLS key log; the capture is
                           # decrypted with it (content-level evidence; docs/telemetry-evidence.md)
probes: {perimeter: true}  # AG-PERIMETER probes after the window
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from conformance.profile_model import LAB_BEHAVIOURS, Mode, Profile

DEFAULT_WINDOW: Final = 20.0  # seconds, when the profile has no `window`
DEFAULT_PERIODS: Final = {
    # Short enough that a 6 s window sees each behaviour at least once after start-up.
    "sip": 3.0,
    "dns": 3.0,
    "ldap": 4.0,
    "ntp": 4.0,
    "licensing": 4.0,
    "telemetry": 3.0,
    "grpc": 4.0,
    "user_sync": 4.0,
    "fault": 3.0,
}
if tuple(DEFAULT_PERIODS) != LAB_BEHAVIOURS:  # pragma: no cover - a mistake in this file
    raise RuntimeError("DEFAULT_PERIODS must name exactly profile_model.LAB_BEHAVIOURS")
SCAN_PORTS: Final = (8080, 9443)  # the admin API and the remote-support port of the fault


@dataclass(frozen=True, slots=True)
class LabOptions:
    """What the lab does beyond the profile's promises."""

    window: float
    perimeter: str
    cloud_cert: str = "valid"
    scanner: bool = True
    periods: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PERIODS))
    probe_perimeter: bool = False
    intercept: bool = False  # mitmproxy behind squid records DECRYPTED_REQUESTS
    tls_keylog: bool = False  # the target writes its key log: TLS_DECRYPTED from the capture


def lab_options(profile: Profile) -> LabOptions:
    """The lab's options from the profile's `lab:` and `probes:` (checked when it loaded)."""
    lab = profile.lab
    default_perimeter = "closed" if profile.mode is Mode.AIR_GAPPED else "cloud"
    intercept = lab.intercept
    if intercept is None:
        # An interceptor would stand in for an untrusted cloud certificate (HY-CERT).
        intercept = profile.proxy is not None and lab.cloud_cert == "valid"
    return LabOptions(
        window=profile.window_seconds or DEFAULT_WINDOW,
        perimeter=lab.perimeter or default_perimeter,
        cloud_cert=lab.cloud_cert,
        scanner=lab.scanner,
        periods={**DEFAULT_PERIODS, **dict(lab.periods)},
        probe_perimeter=profile.probes.perimeter,
        intercept=intercept,
        tls_keylog=lab.tls_keylog,
    )
