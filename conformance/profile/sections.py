"""The live-target sections of a profile: `lab`, `probes`, `stimuli`, `host`, typed on load.

The features that use them (conformance/lab, conformance/host) read these records and never
the YAML, so a mistake in any of them stops the run before anything starts, with the file and
the key path (`site.yaml: stimuli[2].http.url: ...`).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from conformance.profile import shape
from conformance.profile.values import (
    At,
    choice,
    describe,
    duration,
    expected,
    fields,
    finite,
    flag,
    listed,
    quote,
    string,
)
from conformance.profile_model import (
    LAB_NETWORKS,
    STIMULUS_METHODS,
    HostSettings,
    LabSettings,
    ProbeSettings,
    StimulusSpec,
)

MAX_HOST_SECONDS: Final = 600.0  # a remote command or sample interval longer than 10 min is a typo
_STIMULUS_UNITS: Final = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0}
_LAB_NETWORKS: Final = tuple(ipaddress.ip_network(network) for network in LAB_NETWORKS)


def lab(value: object, at: At) -> LabSettings:
    """`lab:` (docs/lab.md)."""
    given = fields(value, at, shape.LAB)
    periods: list[tuple[str, float]] = []
    if "periods" in given:
        for name, seconds in fields(
            given["periods"], at / "periods", shape.LAB.section("periods")
        ).items():
            where = at / "periods" / name
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
                where.fail("expected a positive number of seconds")
            periods.append((name, finite(seconds, where, describe(seconds))))
    intercept: bool | None = None
    if given.get("intercept", "auto") != "auto":
        raw = given["intercept"]
        if not isinstance(raw, bool):
            expected(at / "intercept", "true, false or auto", raw)
        intercept = raw
    return LabSettings(
        perimeter=_word(given, "perimeter", at, shape.LAB),
        cloud_cert=_word(given, "cloud_cert", at, shape.LAB) or "valid",
        scanner=flag(given["scanner"], at / "scanner") if "scanner" in given else True,
        periods=tuple(periods),
        intercept=intercept,
        tls_keylog=flag(given["tls_keylog"], at / "tls_keylog") if "tls_keylog" in given else False,
    )


def probes(value: object, at: At) -> ProbeSettings:
    """`probes:`: `{perimeter: true}` enables AG-PERIMETER."""
    given = fields(value, at, shape.PROBES)
    return ProbeSettings(
        perimeter=flag(given["perimeter"], at / "perimeter") if "perimeter" in given else False
    )


def stimuli(value: object, at: At) -> tuple[StimulusSpec, ...]:
    """`stimuli:`, in the order written."""
    return tuple(_stimulus(item, at[index]) for index, item in enumerate(listed(value, at)))


def _stimulus(value: object, at: At) -> StimulusSpec:
    given = fields(value, at, shape.STIMULUS)
    spelling = shape.pattern(shape.STIMULUS.node("at"))
    when = duration(given["at"], at / "at", spelling, _STIMULUS_UNITS, "5s, 500ms or 1m")
    if when < 0:
        (at / "at").fail("a negative time; stimuli run from the start of the window")
    if "action" in given:
        words = shape.choices(shape.STIMULUS.node("action"))
        return StimulusSpec(when, "action", action=choice(given["action"], at / "action", words))
    if "http" in given:
        where = at / "http"
        request = fields(given["http"], where, shape.STIMULUS_HTTP)
        method = string(request.get("method", "GET"), where / "method", "an HTTP method")
        methods = tuple(m.lower() for m in STIMULUS_METHODS)
        choice(method.lower(), where / "method", methods)
        url = _lab_url(string(request["url"], where / "url", "a URL"), where / "url")
        return StimulusSpec(when, "http", method=method.upper(), url=url)
    command = string(given["shell"], at / "shell", "a command line")
    if not command.strip():
        (at / "shell").fail("empty; write a command line")
    return StimulusSpec(when, "shell", command=command)


def _lab_url(url: str, at: At) -> str:
    """An http(s) URL to a lab address: the harness connects nowhere else (decision 7)."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        at.fail(f"{quote(url)} is not an http(s) URL")
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        at.fail(f"{quote(url)} is not an http(s) URL")
    try:
        host = ipaddress.ip_address(hostname)
    except ValueError:
        at.fail(f"{quote(url)}: write a lab address, not a name (the harness resolves nothing)")
    if not any(host in net for net in _LAB_NETWORKS if net.version == host.version):
        at.fail(f"{host} is not a lab address ({', '.join(LAB_NETWORKS)})")
    return url


def host(value: object, at: At, source: Path) -> HostSettings:
    """`host:` (docs/hosts.md); files are checked now, relative to the profile's directory."""
    given = fields(value, at, shape.HOST)
    settings = given.get("settings")
    if settings is not None and (not isinstance(settings, str) or not settings.startswith("/")):
        (at / "settings").fail("expected an absolute path on the host")
    capture = given.get("capture")
    if capture is not None:
        spelling = shape.pattern(shape.HOST.node("capture"))
        if not isinstance(capture, str) or re.fullmatch(spelling, capture) is None:
            (at / "capture").fail("expected an interface name (no spaces, quotes, ; or $)")
    return HostSettings(
        ssh_config=_file(given.get("ssh_config"), at / "ssh_config", source),
        identity=_file(given.get("identity"), at / "identity", source),
        known_hosts=_file(given.get("known_hosts"), at / "known_hosts", source),
        settings=settings,
        command_timeout=_seconds(given.get("command_timeout"), at / "command_timeout", 20.0),
        sample_interval=_seconds(given.get("sample_interval"), at / "sample_interval", 2.0),
        sudo=flag(given["sudo"], at / "sudo") if "sudo" in given else False,
        capture=capture,
    )


def _file(value: object, at: At, source: Path) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        at.fail("expected a file path")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = source.parent / path  # relative to the profile, like every path in it
    if not path.is_file():
        at.fail(f"{path}: no such file")
    return path


def _seconds(value: object, at: At, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        at.fail(f"expected seconds between 0 and {MAX_HOST_SECONDS:g}")
    if not 0 < value <= MAX_HOST_SECONDS:
        at.fail(f"expected seconds between 0 and {MAX_HOST_SECONDS:g}")
    return float(value)


def _word(given: dict[str, object], key: str, at: At, section: shape.Section) -> str | None:
    """The value of a Choice key, or None when absent."""
    if key not in given:
        return None
    return choice(given[key], at / key, shape.choices(section.node(key)))
