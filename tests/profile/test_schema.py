"""The JSON Schema and the loader agree: the same profiles are valid for both, the same refused.

Where JSON Schema cannot hold a rule, the case is listed in LOADER_ONLY with the reason: the
loader refuses it and the schema lets it through (the editor cannot know; `profile check`
and `run` do).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conformance.cli import main
from conformance.errors import ProfileError
from conformance.profile import parse_profile
from conformance.profile.schema import generate, render, shipped

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft7Validator(generate())

AIR_GAPPED: dict[str, Any] = {
    "name": "acme-hq",
    "mode": "air-gapped",
    "target": {"addresses": ["192.0.2.10", "2001:db8:1::10"]},
    "environment": {
        "networks": ["192.0.2.0/24", "2001:db8:1::/64"],
        "endpoints": [{"name": "cucm", "address": "192.0.2.20", "ports": ["5060/udp", "5061/tcp"]}],
    },
}
HYBRID: dict[str, Any] = {
    **AIR_GAPPED,
    "mode": "hybrid",
    "cloud": {
        "services": ["licensing", "telemetry"],
        "endpoints": ["api.imagicle.com:443", "*.imagicle.cloud:636"],
    },
    "telemetry": "enabled",
}
DELETE = object()


def changed(base: dict[str, Any], **changes: object) -> dict[str, Any]:
    """`base` with keys set or deleted; `environment__endpoints__0__ports` is a key path."""
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    return data


VALID: list[tuple[str, dict[str, Any]]] = [
    ("air-gapped", AIR_GAPPED),
    ("hybrid", HYBRID),
    ("IPv6 network", changed(AIR_GAPPED, environment__networks=["192.0.2.0/24", "2001:db8::/32"])),
    (
        "bare address network",
        changed(AIR_GAPPED, environment__networks=["192.0.2.10", "192.0.2.20", "::/0"]),
    ),
    ("compressed IPv6", changed(AIR_GAPPED, target__addresses=["2001:DB8:1:0::10"])),
    ("strict", changed(AIR_GAPPED, environment__strict=True)),
    ("no endpoints", changed(AIR_GAPPED, environment__endpoints=[])),
    ("port 65535", changed(AIR_GAPPED, environment__endpoints__0__ports=["65535/udp", "1/tcp"])),
    ("window text", changed(AIR_GAPPED, window="1.5m")),
    ("window number", changed(AIR_GAPPED, window=30)),
    ("minimum window", changed(AIR_GAPPED, observation={"minimum_window": "2d"})),
    ("empty observation", changed(AIR_GAPPED, observation={})),
    ("draft", changed(AIR_GAPPED, draft=True)),
    ("telemetry disabled air-gapped", changed(AIR_GAPPED, telemetry="disabled")),
    ("min_tls text", changed(HYBRID, cloud__min_tls="1.3")),
    ("min_tls number", changed(HYBRID, cloud__min_tls=1.2)),
    ("quic endpoint", changed(HYBRID, cloud__endpoints=["api.imagicle.com:443/udp"])),
    ("tcp spelled", changed(HYBRID, cloud__endpoints=["grpc.imagicle.com:443/tcp"])),
    ("upper-case documented", changed(HYBRID, cloud__endpoints=["API.Imagicle.COM.:443"])),
    ("covered wildcard", changed(HYBRID, cloud__endpoints=["*.eu.imagicle.cloud:636"])),
    ("covered name", changed(HYBRID, cloud__endpoints=["licensing.imagicle.com:443"])),
    (
        "justified endpoint",
        changed(
            HYBRID,
            cloud__endpoints=[{"endpoint": "crl.example.net:80", "justification": "CRL"}],
        ),
    ),
    ("deactivated", changed(HYBRID, cloud={"services": []}, telemetry="disabled")),
    ("hybrid without cloud", changed(HYBRID, cloud=DELETE, telemetry="disabled")),
    ("proxy", changed(HYBRID, proxy="192.0.2.80:3128")),
    ("IPv6 proxy", changed(HYBRID, proxy="[2001:db8:1::80]:3128")),
    (
        "hint",
        changed(HYBRID, cloud__hints=[{"address": "198.51.100.7", "name": "api.imagicle.com"}]),
    ),
    (
        "voice analytics alone",
        changed(HYBRID, cloud__services=["voice-analytics"], telemetry="disabled"),
    ),
    (
        "lab",
        changed(AIR_GAPPED, lab={"perimeter": "open", "periods": {"sip": 2}, "intercept": "auto"}),
    ),
    ("lab intercept with proxy", changed(HYBRID, proxy="192.0.2.80:3128", lab={"intercept": True})),
    ("probes", changed(AIR_GAPPED, probes={"perimeter": True})),
    (
        "stimuli",
        changed(
            AIR_GAPPED,
            stimuli=[
                {"at": "5s", "action": "restart"},
                {"at": 0, "shell": "ip -br addr"},
                {"at": "500ms", "http": {"method": "get", "url": "http://192.0.2.10:8080/"}},
            ],
        ),
    ),
    (
        "host",
        changed(AIR_GAPPED, host={"settings": "/etc/ucx.json", "sudo": True, "capture": "eth0"}),
    ),
    ("host timeouts", changed(AIR_GAPPED, host={"command_timeout": 600, "sample_interval": 0.5})),
]

INVALID: list[tuple[str, dict[str, Any]]] = [
    ("unknown top key", changed(AIR_GAPPED, modee="hybrid")),
    ("image", changed(AIR_GAPPED, image={"name": "ucx"})),
    ("missing name", changed(AIR_GAPPED, name=DELETE)),
    ("missing target", changed(AIR_GAPPED, target=DELETE)),
    ("missing networks", changed(AIR_GAPPED, environment__networks=DELETE)),
    ("empty name", changed(AIR_GAPPED, name="  ")),
    ("name line break", changed(AIR_GAPPED, name="a\nb")),
    ("long name", changed(AIR_GAPPED, name="x" * 201)),
    ("name number", changed(AIR_GAPPED, name=2024)),
    ("mode", changed(AIR_GAPPED, mode="cloudy")),
    ("mode boolean", changed(AIR_GAPPED, mode=False)),
    ("no addresses", changed(AIR_GAPPED, target__addresses=[])),
    ("address string", changed(AIR_GAPPED, target__addresses="192.0.2.10")),
    ("address leading zero", changed(AIR_GAPPED, target__addresses=["192.0.2.010"])),
    ("address network", changed(AIR_GAPPED, target__addresses=["192.0.2.10/32"])),
    ("address zone", changed(AIR_GAPPED, target__addresses=["fe80::1%eth0"])),
    ("address name", changed(AIR_GAPPED, target__addresses=["ucx.example"])),
    ("address number", changed(AIR_GAPPED, target__addresses=[3232235530])),
    ("network netmask", changed(AIR_GAPPED, environment__networks=["192.0.2.0/255.255.255.0"])),
    ("network leading zero prefix", changed(AIR_GAPPED, environment__networks=["192.0.2.0/024"])),
    ("network prefix 33", changed(AIR_GAPPED, environment__networks=["192.0.2.0/33"])),
    ("network prefix 129", changed(AIR_GAPPED, environment__networks=["2001:db8::/129"])),
    ("no networks", changed(AIR_GAPPED, environment__networks=[])),
    ("strict text", changed(AIR_GAPPED, environment__strict="yes")),
    ("endpoint unknown key", changed(AIR_GAPPED, environment__endpoints__0__port=["1/tcp"])),
    ("endpoint no ports", changed(AIR_GAPPED, environment__endpoints__0__ports=[])),
    ("port bare", changed(AIR_GAPPED, environment__endpoints__0__ports=[5060])),
    ("port bare text", changed(AIR_GAPPED, environment__endpoints__0__ports=["5060"])),
    ("port upper case", changed(AIR_GAPPED, environment__endpoints__0__ports=["5060/TCP"])),
    ("port leading zero", changed(AIR_GAPPED, environment__endpoints__0__ports=["053/udp"])),
    ("port zero", changed(AIR_GAPPED, environment__endpoints__0__ports=["0/udp"])),
    ("port too big", changed(AIR_GAPPED, environment__endpoints__0__ports=["65536/tcp"])),
    ("port sctp", changed(AIR_GAPPED, environment__endpoints__0__ports=["5060/sctp"])),
    ("port range", changed(AIR_GAPPED, environment__endpoints__0__ports=["5060-5061/udp"])),
    ("port other digits", changed(AIR_GAPPED, environment__endpoints__0__ports=["\u0665060/udp"])),
    ("cloud air-gapped", changed(AIR_GAPPED, cloud={"services": []})),
    ("proxy air-gapped", changed(AIR_GAPPED, proxy="192.0.2.80:3128")),
    ("telemetry enabled air-gapped", changed(AIR_GAPPED, telemetry="enabled")),
    ("telemetry missing hybrid", changed(HYBRID, telemetry=DELETE)),
    ("telemetry boolean", changed(HYBRID, telemetry=False)),
    ("telemetry without service", changed(HYBRID, cloud__services=["licensing"])),
    ("unknown service", changed(HYBRID, cloud__services=["licensing", "chat"])),
    (
        "service twice",
        changed(HYBRID, cloud__services=["licensing", "licensing"], telemetry="disabled"),
    ),
    ("without licensing", changed(HYBRID, cloud__services=["sso"], telemetry="disabled")),
    ("services missing", changed(HYBRID, cloud__services=DELETE)),
    ("no endpoints while active", changed(HYBRID, cloud__endpoints=DELETE)),
    ("empty endpoints while active", changed(HYBRID, cloud__endpoints=[])),
    ("endpoint without port", changed(HYBRID, cloud__endpoints=["api.imagicle.com"])),
    ("endpoint port 0443", changed(HYBRID, cloud__endpoints=["api.imagicle.com:0443"])),
    ("endpoint UDP upper", changed(HYBRID, cloud__endpoints=["api.imagicle.com:443/UDP"])),
    ("endpoint sctp", changed(HYBRID, cloud__endpoints=["api.imagicle.com:443/sctp"])),
    ("endpoint lone star", changed(HYBRID, cloud__endpoints=["*:443"])),
    ("endpoint inner star", changed(HYBRID, cloud__endpoints=["a.*.imagicle.com:443"])),
    ("endpoint undocumented", changed(HYBRID, cloud__endpoints=["crl.example.net:80"])),
    ("endpoint apex", changed(HYBRID, cloud__endpoints=["imagicle.com:443"])),
    (
        "endpoint lookalike",
        changed(HYBRID, cloud__endpoints=["api.imagicle.com.evil.example:443"]),
    ),
    (
        "justification missing",
        changed(HYBRID, cloud__endpoints=[{"endpoint": "crl.example.net:80"}]),
    ),
    (
        "justification empty",
        changed(
            HYBRID, cloud__endpoints=[{"endpoint": "crl.example.net:80", "justification": " "}]
        ),
    ),
    (
        "endpoint mapping unknown key",
        changed(HYBRID, cloud__endpoints=[{"endpoint": "api.imagicle.com:443", "why": "x"}]),
    ),
    ("min_tls", changed(HYBRID, cloud__min_tls="1.4")),
    ("min_tls boolean", changed(HYBRID, cloud__min_tls=True)),
    (
        "hint pattern",
        changed(HYBRID, cloud__hints=[{"address": "198.51.100.7", "name": "*.imagicle.com"}]),
    ),
    ("hint no address", changed(HYBRID, cloud__hints=[{"name": "api.imagicle.com"}])),
    ("proxy name", changed(HYBRID, proxy="proxy.corp.example:3128")),
    ("proxy no port", changed(HYBRID, proxy="192.0.2.80")),
    ("proxy bare IPv6", changed(HYBRID, proxy="2001:db8:1::80:3128")),
    ("proxy port", changed(HYBRID, proxy="192.0.2.80:99999")),
    ("window unit", changed(AIR_GAPPED, window="2d")),
    ("window zero", changed(AIR_GAPPED, window=0)),
    ("window negative", changed(AIR_GAPPED, window=-5)),
    ("window too long", changed(AIR_GAPPED, window=86401)),
    ("window boolean", changed(AIR_GAPPED, window=True)),
    ("window list", changed(AIR_GAPPED, window=[20])),
    ("minimum window week", changed(AIR_GAPPED, observation={"minimum_window": "1 week"})),
    ("minimum window key", changed(AIR_GAPPED, observation={"minimum": "1h"})),
    ("draft text", changed(AIR_GAPPED, draft="yes please")),
    ("lab unknown", changed(AIR_GAPPED, lab={"faults": ["x"]})),
    ("lab perimeter", changed(AIR_GAPPED, lab={"perimeter": "ajar"})),
    ("lab not mapping", changed(AIR_GAPPED, lab=True)),
    ("lab period zero", changed(AIR_GAPPED, lab={"periods": {"sip": 0}})),
    ("lab period unknown", changed(AIR_GAPPED, lab={"periods": {"sipp": 1}})),
    ("lab intercept text", changed(HYBRID, lab={"intercept": "yes"})),
    ("lab intercept without proxy", changed(HYBRID, lab={"intercept": True})),
    ("lab keylog text", changed(HYBRID, lab={"tls_keylog": "yes"})),
    ("probes text", changed(AIR_GAPPED, probes={"perimeter": "yes"})),
    ("probes list", changed(AIR_GAPPED, probes=[True])),
    ("stimuli mapping", changed(AIR_GAPPED, stimuli={"at": 1})),
    ("stimulus without at", changed(AIR_GAPPED, stimuli=[{"action": "restart"}])),
    ("stimulus without kind", changed(AIR_GAPPED, stimuli=[{"at": 1}])),
    (
        "stimulus two kinds",
        changed(AIR_GAPPED, stimuli=[{"at": 1, "shell": "x", "action": "restart"}]),
    ),
    ("stimulus action", changed(AIR_GAPPED, stimuli=[{"at": 1, "action": "format-disk"}])),
    ("stimulus time", changed(AIR_GAPPED, stimuli=[{"at": "soon", "shell": "x"}])),
    ("stimulus negative", changed(AIR_GAPPED, stimuli=[{"at": -1, "shell": "x"}])),
    ("stimulus empty shell", changed(AIR_GAPPED, stimuli=[{"at": 1, "shell": " "}])),
    (
        "stimulus method",
        changed(
            AIR_GAPPED, stimuli=[{"at": 1, "http": {"method": "PATCH", "url": "http://192.0.2.9/"}}]
        ),
    ),
    (
        "stimulus http scheme",
        changed(AIR_GAPPED, stimuli=[{"at": 1, "http": {"url": "ftp://192.0.2.9/"}}]),
    ),
    ("stimulus http no url", changed(AIR_GAPPED, stimuli=[{"at": 1, "http": {"method": "GET"}}])),
    ("host unknown", changed(AIR_GAPPED, host={"sudoo": True})),
    ("host list", changed(AIR_GAPPED, host=["eth0"])),
    ("host settings relative", changed(AIR_GAPPED, host={"settings": "etc/ucx.json"})),
    ("host timeout zero", changed(AIR_GAPPED, host={"command_timeout": 0})),
    ("host timeout long", changed(AIR_GAPPED, host={"sample_interval": 601})),
    ("host sudo text", changed(AIR_GAPPED, host={"sudo": "yes"})),
    ("host capture injection", changed(AIR_GAPPED, host={"capture": "eth0; reboot"})),
    ("host known_hosts number", changed(AIR_GAPPED, host={"known_hosts": 7})),
]

LOADER_ONLY: list[tuple[str, dict[str, Any], str]] = [
    (
        "target outside the networks",
        changed(AIR_GAPPED, target__addresses=["198.51.100.10"]),
        "an address inside a network of the same profile",
    ),
    (
        "endpoint outside the networks",
        changed(AIR_GAPPED, environment__endpoints__0__address="198.51.100.20"),
        "an address inside a network of the same profile",
    ),
    (
        "proxy outside the networks",
        changed(HYBRID, proxy="198.51.100.80:3128"),
        "an address inside a network of the same profile",
    ),
    (
        "host bits set",
        changed(AIR_GAPPED, environment__networks=["192.0.2.1/24"]),
        "host bits are arithmetic on the address",
    ),
    (
        "IPv4-mapped target",
        changed(AIR_GAPPED, target__addresses=["::ffff:192.0.2.10"]),
        "an IPv4-mapped address has many IPv6 spellings",
    ),
    ("window 25h", changed(AIR_GAPPED, window="25h"), "a bound on a duration written as text"),
    (
        "wildcard top-level domain",
        changed(HYBRID, cloud__endpoints=[{"endpoint": "*.com:443", "justification": "x"}]),
        "label rules of names (names.py, IDNA)",
    ),
    (
        "hyphen at a label's end",
        changed(
            HYBRID, cloud__endpoints=[{"endpoint": "a-.example.com:443", "justification": "x"}]
        ),
        "label rules of names (names.py, IDNA)",
    ),
    (
        "missing identity file",
        changed(AIR_GAPPED, host={"identity": "ssh/no-such-key"}),
        "a file must exist on the machine that runs the harness",
    ),
    (
        "stimulus URL outside the lab",
        changed(AIR_GAPPED, stimuli=[{"at": 1, "http": {"url": "http://10.0.0.1/"}}]),
        "an address inside the lab's networks",
    ),
]


def _loads(data: dict[str, Any], tmp_path: Path) -> ProfileError | None:
    try:
        parse_profile(data, tmp_path / "case.yaml")
    except ProfileError as exc:
        return exc
    return None


def _schema_errors(data: dict[str, Any]) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(data)]


def test_the_schema_is_a_valid_draft_07_schema() -> None:
    jsonschema.Draft7Validator.check_schema(generate())


def test_the_shipped_schema_is_the_generated_one() -> None:
    assert shipped() == render(generate()), "run: python -m conformance.profile.schema --write"


@pytest.mark.parametrize(("case", "data"), VALID, ids=[c for c, _ in VALID])
def test_both_accept(case: str, data: dict[str, Any], tmp_path: Path) -> None:
    assert _loads(data, tmp_path) is None
    assert _schema_errors(data) == []


@pytest.mark.parametrize(("case", "data"), INVALID, ids=[c for c, _ in INVALID])
def test_both_refuse(case: str, data: dict[str, Any], tmp_path: Path) -> None:
    assert _loads(data, tmp_path) is not None
    assert _schema_errors(data), "the schema accepts what the loader refuses"


@pytest.mark.parametrize(("case", "data", "why"), LOADER_ONLY, ids=[c for c, _, _ in LOADER_ONLY])
def test_known_loader_only_rules(case: str, data: dict[str, Any], why: str, tmp_path: Path) -> None:
    # JSON Schema cannot express it (why); editors let it through, the loader does not.
    assert _loads(data, tmp_path) is not None
    assert _schema_errors(data) == []


@pytest.mark.parametrize("profile", sorted((ROOT / "fixtures" / "profiles").glob("*.yaml")))
def test_every_shipped_profile_is_valid_for_the_schema(profile: Path) -> None:
    assert _schema_errors(yaml.safe_load(profile.read_text(encoding="utf-8"))) == []


def test_profile_schema_command_prints_the_shipped_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["profile", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == generate()
    out = tmp_path / "profile.schema.json"
    assert main(["profile", "schema", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == shipped()


def _patterns(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return found + [
            p for key, value in node.items() if key != "pattern" for p in _patterns(value)
        ]
    if isinstance(node, list):
        return [p for item in node for p in _patterns(item)]
    return []


# Escapes ECMA-262 regular expressions accept in unicode mode (editors' JavaScript engines):
# syntax characters, / and -, the classes \d \s \S, and \xHH / \uHHHH. Any other escape (\")
# is an error there although Python's re accepts it. Checked once with node 20: every pattern
# compiles with and without the u flag and agrees with Python's re on sample strings.
_ECMA_ESCAPES = re.compile(r"\\(?:[\^$\\.*+?()[\]{}|/\-dsS]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})")


def test_every_pattern_is_also_an_ecma_262_unicode_pattern() -> None:
    patterns = _patterns(generate())
    assert len(patterns) > 20
    for pattern in patterns:
        leftover = _ECMA_ESCAPES.sub("", pattern)
        assert "\\" not in leftover, pattern
        re.compile(pattern)
