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
from pathlib import Path
from typing import Final

from conformance.errors import ProfileError
from conformance.lab.certs import CERT_KINDS
from conformance.lab.perimeter import POLICIES
from conformance.profile_model import Mode, Profile

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
SCAN_PORTS: Final = (8080, 9443)  # the admin API and the remote-support port of the fault
_LAB_KEYS: Final = ("perimeter", "cloud_cert", "scanner", "periods", "intercept", "tls_keylog")
_PROBE_KEYS: Final = ("perimeter",)


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


def _mapping(value: object, source: Path, key: str, allowed: tuple[str, ...]) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProfileError(source, key, "expected a mapping")
    for name in value:
        if name not in allowed:
            raise ProfileError(
                source, f"{key}.{name}", f"unknown key; allowed: {', '.join(allowed)}"
            )
    return value


def _choice(value: object, source: Path, key: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ProfileError(source, key, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _flag(value: object, source: Path, key: str) -> bool:
    if not isinstance(value, bool):
        raise ProfileError(source, key, "expected true or false")
    return value


def lab_options(profile: Profile) -> LabOptions:
    """Parse `lab:` and `probes:`; ProfileError naming file and key path."""
    source = profile.source
    lab = _mapping(profile.extra.get("lab"), source, "lab", _LAB_KEYS)
    probes = _mapping(profile.extra.get("probes"), source, "probes", _PROBE_KEYS)
    default_perimeter = "closed" if profile.mode is Mode.AIR_GAPPED else "cloud"
    periods = dict(DEFAULT_PERIODS)
    for name, seconds in _mapping(
        lab.get("periods"), source, "lab.periods", tuple(DEFAULT_PERIODS)
    ).items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ProfileError(
                source, f"lab.periods.{name}", "expected a positive number of seconds"
            )
        periods[name] = float(seconds)
    cloud_cert = _choice(lab.get("cloud_cert", "valid"), source, "lab.cloud_cert", CERT_KINDS)
    intercept = lab.get("intercept", "auto")
    if intercept == "auto":
        # An interceptor would stand in for an untrusted cloud certificate (HY-CERT).
        intercept = profile.proxy is not None and cloud_cert == "valid"
    intercept = _flag(intercept, source, "lab.intercept")
    if intercept and profile.proxy is None:
        raise ProfileError(
            source,
            "lab.intercept",
            "the interceptor sits behind the proxy: the profile declares none",
        )
    return LabOptions(
        window=profile.window_seconds or DEFAULT_WINDOW,
        perimeter=_choice(
            lab.get("perimeter", default_perimeter), source, "lab.perimeter", POLICIES
        ),
        cloud_cert=cloud_cert,
        scanner=_flag(lab.get("scanner", True), source, "lab.scanner"),
        periods=periods,
        probe_perimeter=_flag(probes.get("perimeter", False), source, "probes.perimeter"),
        intercept=intercept,
        tls_keylog=_flag(lab.get("tls_keylog", False), source, "lab.tls_keylog"),
    )
