"""Load a deployment profile (interface.md) into a frozen Profile, or raise ProfileError.

Every problem is reported as one line naming the file, the key path and the problem, e.g.
`site.yaml: environment.endpoints[1].ports[0]: "5060/sctp" is not N/tcp or N/udp`.
docs/profile.md describes every key; shape.py lists them (the JSON Schema is made from it);
this module and sections.py are the authority on what is accepted.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from conformance.names import DOCUMENTED_ENDPOINT_PATTERNS, covers, normalize_pattern
from conformance.profile import sections, shape
from conformance.profile.reader import parse_yaml, read_bytes
from conformance.profile.values import (
    BOOL_HINT,
    At,
    choice,
    describe,
    duration,
    fields,
    flag,
    inside,
    ip_address,
    ip_network,
    listed,
    one_line,
    port_number,
    port_spec,
    quote,
    string,
)
from conformance.profile_model import (
    SERVICES_NEEDING_LICENSING,
    Cloud,
    CloudEndpoint,
    Environment,
    HostSettings,
    IPAddress,
    LabSettings,
    Mode,
    NameHint,
    OnPremEndpoint,
    ProbeSettings,
    Profile,
    ProxySpec,
    Target,
    Telemetry,
    Transport,
)

MAX_JUSTIFICATION: Final = 2000  # a paragraph, shown in the report next to the endpoint
MAX_WINDOW_SECONDS: Final = 86_400  # a live observation longer than a day is not a plan
# observation.minimum_window: a period of continuous judgement may be weeks; a year is a typo.
MAX_MINIMUM_WINDOW_SECONDS: Final = 366 * 86_400

# A cloud endpoint's port: ASCII digits, then `/tcp` (the default) or `/udp` (QUIC), lower case.
_CLOUD_PORT = re.compile(r"([0-9]{1,10})(?:/(tcp|udp))?", re.ASCII)
_CLOUD_SPELLING = "name:port (TCP), name:port/tcp, or name:port/udp (QUIC)"
_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_HA_NO_CLOUD = (
    'air-gapped mode has no cloud connectivity (HA 2.2: "Cloud-Connected Services and AI'
    ' Features are not available in Air-Gapped Mode"); remove it or set mode: hybrid'
)


def load_profile(path: Path | str) -> Profile:
    """Parse the YAML profile at `path` into a frozen Profile, or raise ProfileError."""
    source = Path(path)
    data = read_bytes(source, At(str(path)))
    profile = parse_profile(parse_yaml(data, At(str(path))), source, str(path))
    return dataclasses.replace(profile, loaded=data)


def parse_profile(data: object, source: Path, shown: str | None = None) -> Profile:
    """A Profile from the plain values of a profile (as YAML gives them), or ProfileError.

    `source` is where relative paths in the profile start from (its file); errors name
    `shown`, by default `source`.
    """
    return _profile(data, At(shown if shown is not None else str(source)), source)


# --- sections ----------------------------------------------------------------------------


def _profile(data: object, at: At, source: Path) -> Profile:
    if data is None:
        at.fail(f"empty; a profile is a mapping with {', '.join(shape.PROFILE.required)}")
    top = fields(data, at, shape.PROFILE)
    name = one_line(top["name"], at / "name")
    mode = Mode(choice(top["mode"], at / "mode", shape.choices(shape.PROFILE.node("mode"))))
    addresses = _target_addresses(top["target"], at / "target")
    environment = _environment(top["environment"], at / "environment")
    for index, address in enumerate(addresses):
        role = "the target is part of the Customer Environment (HA 1)"
        inside(environment, address, (at / "target" / "addresses")[index], role)
    if mode is Mode.AIR_GAPPED:
        for key in ("cloud", "proxy"):
            if key in top:
                (at / key).fail(f"hybrid-only section: {_HA_NO_CLOUD}")
    cloud = _cloud(top["cloud"], at / "cloud") if "cloud" in top else None
    proxy = _proxy(top["proxy"], at / "proxy", environment) if "proxy" in top else None
    lab = sections.lab(top["lab"], at / "lab") if "lab" in top else LabSettings()
    if lab.intercept and proxy is None:
        (at / "lab" / "intercept").fail(
            "the interceptor sits behind the proxy: the profile declares none"
        )
    return Profile(
        source=source,
        name=name,
        mode=mode,
        target=Target(addresses),
        environment=environment,
        cloud=cloud,
        proxy=proxy,
        telemetry=_telemetry(top, at / "telemetry", mode, cloud),
        window_seconds=_window(top["window"], at / "window") if "window" in top else None,
        minimum_window_seconds=(
            _observation(top["observation"], at / "observation") if "observation" in top else None
        ),
        draft=flag(top["draft"], at / "draft") if "draft" in top else False,
        lab=lab,
        probes=sections.probes(top["probes"], at / "probes")
        if "probes" in top
        else ProbeSettings(),
        stimuli=sections.stimuli(top["stimuli"], at / "stimuli") if "stimuli" in top else (),
        host=sections.host(top["host"], at / "host", source) if "host" in top else HostSettings(),
    )


def _target_addresses(value: object, at: At) -> tuple[IPAddress, ...]:
    given = fields(value, at, shape.PROFILE.section("target"))
    items = listed(given["addresses"], at / "addresses", nonempty=True)
    return tuple(ip_address(item, (at / "addresses")[index]) for index, item in enumerate(items))


def _environment(value: object, at: At) -> Environment:
    given = fields(value, at, shape.ENVIRONMENT)
    items = listed(given["networks"], at / "networks", nonempty=True)
    networks = tuple(ip_network(item, (at / "networks")[index]) for index, item in enumerate(items))
    strict = flag(given["strict"], at / "strict") if "strict" in given else False
    environment = Environment(networks=networks, strict=strict)
    endpoints = listed(given.get("endpoints", []), at / "endpoints")
    return Environment(
        networks=networks,
        strict=strict,
        endpoints=tuple(
            _endpoint(item, (at / "endpoints")[index], environment)
            for index, item in enumerate(endpoints)
        ),
    )


def _endpoint(value: object, at: At, environment: Environment) -> OnPremEndpoint:
    given = fields(value, at, shape.ENDPOINT)
    address = ip_address(given["address"], at / "address")
    role = "on-prem endpoints are part of the Customer Environment"
    inside(environment, address, at / "address", role)
    ports = listed(given["ports"], at / "ports", nonempty=True)
    return OnPremEndpoint(
        name=one_line(given["name"], at / "name"),
        address=address,
        ports=tuple(port_spec(item, (at / "ports")[index]) for index, item in enumerate(ports)),
    )


def _cloud(value: object, at: At) -> Cloud:
    given = fields(value, at, shape.CLOUD)
    services = _services(given["services"], at / "services")
    endpoints = listed(given.get("endpoints", []), at / "endpoints")
    if services and not endpoints:
        (at / "endpoints").fail(
            "missing or empty while cloud.services activates a service;"
            " list the endpoints the target may reach"
        )
    hints = listed(given.get("hints", []), at / "hints")
    return Cloud(
        services=services,
        endpoints=tuple(
            _cloud_endpoint(item, (at / "endpoints")[index]) for index, item in enumerate(endpoints)
        ),
        min_tls=_min_tls(given["min_tls"], at / "min_tls") if "min_tls" in given else "1.2",
        hints=tuple(_hint(item, (at / "hints")[index]) for index, item in enumerate(hints)),
    )


def _services(value: object, at: At) -> tuple[str, ...]:
    known = shape.choices(shape.item(shape.CLOUD.node("services")))
    services: list[str] = []
    for index, item in enumerate(listed(value, at)):
        service = choice(item, at[index], known)
        if service in services:
            at[index].fail(f"{quote(service)} is listed twice")
        services.append(service)
    dependent = [service for service in services if service in SERVICES_NEEDING_LICENSING]
    if dependent and "licensing" not in services:
        at.fail(
            f"{', '.join(dependent)} need licensing: cloud licensing is the prerequisite of"
            " every Cloud Connected service (CT 2, 3); add licensing"
        )
    return tuple(services)


def _cloud_endpoint(value: object, at: At) -> CloudEndpoint:
    """`"name:port"`, or `{endpoint: "name:port", justification: "..."}` (decision 5)."""
    justification: str | None = None
    where = at
    if isinstance(value, dict):
        given = fields(value, at, shape.CLOUD_ENDPOINT)
        where = at / "endpoint"
        written = string(given["endpoint"], where, '"name:port"')
        if "justification" in given:
            justification = _justification(given["justification"], at / "justification")
    else:
        what = '"name:port" or {endpoint: "name:port", justification: "..."}'
        written = string(value, at, what)
    pattern, port, transport = _name_port(written, where)
    endpoint = CloudEndpoint(pattern, port, justification, transport)
    documented = any(covers(known, pattern) for known in DOCUMENTED_ENDPOINT_PATTERNS)
    if justification is None and not documented:
        missing = at / "justification" if isinstance(value, dict) else at
        missing.fail(
            f"{endpoint} is not a documented Imagicle endpoint"
            f" ({', '.join(DOCUMENTED_ENDPOINT_PATTERNS)}); allow it only with a written"
            " justification, which the report shows (controls.md decision 5):"
            f' {{endpoint: "{endpoint}", justification: "..."}}'
        )
    return endpoint


def _name_port(written: str, at: At) -> tuple[str, int, Transport]:
    """`name:port` or `name:port/tcp` (TLS over TCP), `name:port/udp` (QUIC, HTTP/3).

    Spelled strictly, as the report writes it back: ASCII digits without leading zeros,
    the transport in lower case.
    """
    host, colon, port = written.rpartition(":")
    if not colon:
        at.fail(f"{quote(written)} has no port; write {_CLOUD_SPELLING}")
    found = _CLOUD_PORT.fullmatch(port)
    if found is None:
        written_number, slash, suffix = port.partition("/")
        if slash and suffix.lower() in ("tcp", "udp"):
            at.fail(
                f"{quote(written)}: write the transport in lower case"
                f" ({written_number}/{suffix.lower()}): {host}:{written_number}/{suffix.lower()}"
            )
        if slash:
            at.fail(f"{quote(written)}: {quote(suffix)} is not tcp or udp; {_CLOUD_SPELLING}")
        try:
            meant = int(port)  # other scripts' digits, "+443": name the accepted spelling
        except ValueError:
            meant = 0
        hint = f": write {host}:{meant}" if 1 <= meant <= 65535 else f"; {_CLOUD_SPELLING}"
        at.fail(f"{quote(written)}: {quote(port)} is not a port number{hint}")
    transport: Transport = "udp" if found[2] == "udp" else "tcp"
    suffix = "/udp" if transport == "udp" else ""
    number = port_number(found[1], at, written, lambda n: f"{host}:{n}{suffix}")
    try:
        return normalize_pattern(host), number, transport
    except ValueError as exc:
        at.fail(f"{quote(host)} is not a valid name pattern: {exc}")


def _justification(value: object, at: At) -> str:
    text = " ".join(string(value, at).split())  # folded to one line for the report
    if not text:
        at.fail("empty; say why the target may reach this endpoint")
    if len(text) > MAX_JUSTIFICATION:
        at.fail(f"longer than {MAX_JUSTIFICATION} characters")
    return text


def _min_tls(value: object, at: At) -> str:
    # An unquoted 1.2 is a YAML float; its text is the version meant.
    if isinstance(value, float):
        value = str(value)
    return choice(value, at, shape.choices(shape.CLOUD.node("min_tls")))


def _hint(value: object, at: At) -> NameHint:
    given = fields(value, at, shape.HINT)
    address = ip_address(given["address"], at / "address")
    written = string(given["name"], at / "name", "a name")
    try:
        name = normalize_pattern(written)
    except ValueError as exc:
        (at / "name").fail(f"{quote(written)} is not a valid name: {exc}")
    if name.startswith("*."):
        (at / "name").fail(f"{quote(written)}: a hint names one host; write it without *.")
    return NameHint(address=address, name=name)


def _proxy(value: object, at: At, environment: Environment) -> ProxySpec:
    """`addr:port`, IPv6 as `[addr]:port`; an address because the harness resolves nothing."""
    written = string(value, at, '"address:port"')
    if written.startswith("["):
        host, close, port = written[1:].partition("]:")
        if not close:
            at.fail(f"{quote(written)} is not [address]:port")
    else:
        if written.count(":") > 1:
            at.fail(f"{quote(written)}: write an IPv6 proxy as [address]:port")
        host, colon, port = written.rpartition(":")
        if not colon:
            at.fail(f"{quote(written)} has no port; write address:port")
    if not port.isdigit():
        at.fail(f"{quote(written)}: {quote(port)} is not a port number")
    proxy_host = f"[{host}]" if written.startswith("[") else host
    number = port_number(port, at, written, lambda n: f"{proxy_host}:{n}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        at.fail(
            f"{quote(host)} is not an IP address; the harness never resolves names"
            " (controls.md decision 7), so write the proxy's address"
        )
    # The same address rules as everywhere else (no zone index, no IPv4-mapped form).
    address = ip_address(host, at)
    if written.startswith("[") and address.version == 4:
        at.fail(f"{quote(written)}: brackets are for IPv6; write {address}:{number}")
    inside(environment, address, at, "the proxy is part of the Customer Environment")
    return ProxySpec(address=address, port=number)


def _telemetry(top: Mapping[str, object], at: At, mode: Mode, cloud: Cloud | None) -> Telemetry:
    if "telemetry" not in top:
        if mode is Mode.HYBRID:
            at.fail(
                "missing; a hybrid profile must say enabled or disabled, because the contract"
                " turns telemetry on by default with cloud licensing (CT 3)"
            )
        return Telemetry.DISABLED
    value = top["telemetry"]
    if isinstance(value, bool):
        meant = "enabled" if value else "disabled"
        at.fail(f"expected enabled or disabled, got {describe(value)} ({BOOL_HINT}: {meant})")
    telemetry = Telemetry(choice(value, at, shape.choices(shape.PROFILE.node("telemetry"))))
    if telemetry is Telemetry.ENABLED:
        if mode is Mode.AIR_GAPPED:
            at.fail(
                "enabled is hybrid-only; air-gapped mode implies disabled"
                ' (HA 2.2: "No cloud-based licensing or telemetry is used")'
            )
        if cloud is None or not cloud.activates("telemetry"):
            at.fail("enabled, but cloud.services does not activate telemetry; add it there")
    return telemetry


def _window(value: object, at: At) -> float:
    """Observation window for live targets: `20s`, `2m`, `1h` or plain seconds."""
    spelling = shape.pattern(shape.PROFILE.node("window"))
    seconds = duration(value, at, spelling, _UNITS, "20s, 2m or 30")
    if not 0 < seconds <= MAX_WINDOW_SECONDS:
        at.fail(f"{seconds:g} seconds is not between 0 and {MAX_WINDOW_SECONDS} (a day)")
    return seconds


def _observation(value: object, at: At) -> float | None:
    """`observation: {minimum_window: 1h}`: the shortest window that can prove absence."""
    given = fields(value, at, shape.OBSERVATION)
    if "minimum_window" not in given:
        return None
    where = at / "minimum_window"
    spelling = shape.pattern(shape.OBSERVATION.node("minimum_window"))
    seconds = duration(given["minimum_window"], where, spelling, _UNITS, "1h, 30m, 2d or 3600")
    if not 0 < seconds <= MAX_MINIMUM_WINDOW_SECONDS:
        where.fail(
            f"{seconds:g} seconds is not between 0 and {MAX_MINIMUM_WINDOW_SECONDS} (a year)"
        )
    return seconds
