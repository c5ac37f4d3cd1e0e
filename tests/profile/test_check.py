"""`profile check`: the explanation, each warning (and none on a sound profile), exit codes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from conformance.profile import load_profile, parse_profile
from conformance.profile.check import ProfileWarning, explain, warnings

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "fixtures" / "profiles"

SOUND: dict[str, Any] = {
    "name": "acme-hq",
    "mode": "hybrid",
    "target": {"addresses": ["192.0.2.10", "2001:db8:1::10"]},
    "environment": {
        "networks": ["192.0.2.0/24", "2001:db8:1::/64"],
        "endpoints": [
            {"name": "cucm", "address": "192.0.2.20", "ports": ["5060/udp", "5061/tcp"]},
            {"name": "ad", "address": "192.0.2.30", "ports": ["389/tcp", "636/tcp"]},
        ],
    },
    "cloud": {
        "services": ["licensing", "telemetry"],
        "endpoints": ["api.imagicle.com:443", "*.imagicle.cloud:636"],
    },
    "telemetry": "enabled",
}


def _warned(tmp_path: Path, **changes: Any) -> list[ProfileWarning]:
    data = copy.deepcopy(SOUND)
    for key, value in changes.items():
        section, _, inner = key.partition("__")
        if inner:
            data[section][inner] = value
        else:
            data[section] = value
    return list(warnings(parse_profile(data, tmp_path / "site.yaml")))


def _only(found: list[ProfileWarning], code: str, key: str) -> ProfileWarning:
    assert [(w.code, w.key) for w in found] == [(code, key)], found
    return found[0]


def test_a_sound_profile_has_no_warnings(tmp_path: Path) -> None:
    assert _warned(tmp_path) == []


@pytest.mark.parametrize("name", ["sample-air-gapped", "sample-hybrid", "lab-air-gapped"])
def test_the_samples_have_no_warnings(name: str) -> None:
    assert warnings(load_profile(PROFILES / f"{name}.yaml")) == ()


def test_overlapping_networks(tmp_path: Path) -> None:
    found = _warned(
        tmp_path, environment__networks=["192.0.2.0/24", "2001:db8:1::/64", "192.0.2.128/25"]
    )
    warning = _only(found, "overlap", "environment.networks[2]")
    assert "lies inside environment.networks[0] 192.0.2.0/24" in warning.message


def test_a_network_listed_twice(tmp_path: Path) -> None:
    found = _warned(
        tmp_path, environment__networks=["192.0.2.0/24", "2001:db8:1::/64", "192.0.2.0/24"]
    )
    assert "listed twice" in _only(found, "overlap", "environment.networks[2]").message


def test_a_larger_network_after_a_smaller_one(tmp_path: Path) -> None:
    found = _warned(
        tmp_path, environment__networks=["192.0.2.0/25", "192.0.2.0/24", "2001:db8:1::/64"]
    )
    assert (
        "the smaller one adds nothing" in _only(found, "overlap", "environment.networks[1]").message
    )


@pytest.mark.parametrize(
    ("network", "words"),
    [
        ("10.0.0.0/8", "16,777,216 addresses"),
        ("2001:db8::/32", "2^96 addresses"),
        ("0.0.0.0/0", "every IPv4 address on-prem"),
    ],
)
def test_enormous_networks(tmp_path: Path, network: str, words: str) -> None:
    found = _warned(tmp_path, environment__networks=["192.0.2.0/24", "2001:db8:1::/64", network])
    codes = {(w.code, w.key) for w in found}
    assert ("enormous-network", "environment.networks[2]") in codes
    assert any(words in w.message for w in found if w.code == "enormous-network")


def test_a_site_sized_network_is_not_enormous(tmp_path: Path) -> None:
    assert _warned(tmp_path, environment__networks=["192.0.0.0/16", "2001:db8:1::/48"]) == []


def test_weak_min_tls(tmp_path: Path) -> None:
    data = copy.deepcopy(SOUND)
    data["cloud"]["min_tls"] = "1.1"
    found = list(warnings(parse_profile(data, tmp_path / "s.yaml")))
    assert "RFC 8996" in _only(found, "weak-tls", "cloud.min_tls").message


def test_wildcard_over_a_public_suffix(tmp_path: Path) -> None:
    data = copy.deepcopy(SOUND)
    data["cloud"]["endpoints"].append(
        {"endpoint": "*.cloudfront.net:443", "justification": "the CDN of the documentation"}
    )
    found = list(warnings(parse_profile(data, tmp_path / "s.yaml")))
    assert (
        "public suffix cloudfront.net"
        in _only(found, "broad-wildcard", "cloud.endpoints[2]").message
    )


@pytest.mark.parametrize("pattern", ["*.co.uk", "*.com.au"])
def test_wildcard_over_a_country_code_suffix(tmp_path: Path, pattern: str) -> None:
    data = copy.deepcopy(SOUND)
    data["cloud"]["endpoints"] = [{"endpoint": f"{pattern}:443", "justification": "x"}]
    found = list(warnings(parse_profile(data, tmp_path / "s.yaml")))
    _only(found, "broad-wildcard", "cloud.endpoints[0]")


def test_wildcard_within_one_domain_is_fine(tmp_path: Path) -> None:
    data = copy.deepcopy(SOUND)
    data["cloud"]["endpoints"] = [
        "*.eu.imagicle.cloud:636",
        {"endpoint": "*.cdn.example.co.uk:443", "justification": "x"},
    ]
    assert list(warnings(parse_profile(data, tmp_path / "s.yaml"))) == []


def test_the_proxy_listed_as_an_endpoint(tmp_path: Path) -> None:
    data = copy.deepcopy(SOUND)
    data["proxy"] = "192.0.2.80:3128"
    data["environment"]["endpoints"].append(
        {"name": "proxy", "address": "192.0.2.80", "ports": ["3128/tcp"]}
    )
    found = list(warnings(parse_profile(data, tmp_path / "s.yaml")))
    assert (
        "declared by `proxy:`"
        in _only(found, "proxy-in-endpoints", "environment.endpoints[2]").message
    )


def test_a_proxy_endpoint_without_proxy(tmp_path: Path) -> None:
    data = copy.deepcopy(SOUND)
    data["environment"]["endpoints"].append(
        {"name": "Squid proxy", "address": "192.0.2.80", "ports": ["3128/tcp"]}
    )
    found = list(warnings(parse_profile(data, tmp_path / "s.yaml")))
    assert (
        "has no `proxy:`" in _only(found, "proxy-in-endpoints", "environment.endpoints[2]").message
    )


def test_duplicate_endpoint_addresses(tmp_path: Path) -> None:
    found = _warned(
        tmp_path,
        environment__endpoints=[
            {"name": "cucm", "address": "192.0.2.20", "ports": ["5060/udp"]},
            {"name": "cucm-tls", "address": "192.0.2.20", "ports": ["5061/tcp"]},
        ],
    )
    assert (
        "merge their ports" in _only(found, "duplicate", "environment.endpoints[1].address").message
    )


def test_duplicate_endpoint_names(tmp_path: Path) -> None:
    found = _warned(
        tmp_path,
        environment__endpoints=[
            {"name": "ad", "address": "192.0.2.30", "ports": ["389/tcp"]},
            {"name": "ad", "address": "192.0.2.31", "ports": ["389/tcp"]},
        ],
    )
    assert (
        "two domain controllers"
        in _only(found, "duplicate", "environment.endpoints[1].name").message
    )


def test_duplicate_ports_target_addresses_and_cloud_endpoints(tmp_path: Path) -> None:
    data = copy.deepcopy(SOUND)
    data["target"]["addresses"].append("192.0.2.10")
    data["environment"]["endpoints"][0]["ports"].append("5060/udp")
    data["cloud"]["endpoints"].append("API.imagicle.com:443")
    found = list(warnings(parse_profile(data, tmp_path / "s.yaml")))
    assert [(w.code, w.key) for w in found] == [
        ("duplicate", "target.addresses[2]"),
        ("duplicate", "environment.endpoints[0].ports"),
        ("duplicate", "cloud.endpoints[2]"),
    ]


def test_an_endpoint_at_the_target_address(tmp_path: Path) -> None:
    found = _warned(
        tmp_path,
        environment__endpoints=[{"name": "self", "address": "192.0.2.10", "ports": ["8080/tcp"]}],
    )
    _only(found, "endpoint-is-target", "environment.endpoints[0].address")


def test_explanation_says_what_is_inside_and_what_applies() -> None:
    text = "\n".join(explain(load_profile(PROFILES / "sample-air-gapped.yaml")))
    assert "192.0.2.0/24  (256 addresses)" in text
    assert "cucm  192.0.2.20  5060/udp, 5060/tcp, 5061/tcp, 8443/tcp" in text
    assert "is a warning (strict: false)" in text
    assert "AG-EGRESS" in text and "HY-DEST" not in text
    assert "AG-PERIMETER" in text and "(off: probes.perimeter)" in text


def test_explanation_of_a_hybrid_profile_with_a_proxy() -> None:
    text = "\n".join(explain(load_profile(PROFILES / "lab-proxy.yaml")))
    assert "api.imagicle.com:443  TLS over TCP" in text
    assert "only through the proxy 192.0.2.80:3128" in text
    assert "TM-OPTOUT" in text and "TM-MINIMAL" not in text
    assert "no hybrid control judges flows inside" in text


def test_check_command_prints_and_exits_zero_with_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = copy.deepcopy(SOUND)
    data["cloud"]["min_tls"] = "1.0"
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["profile", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: cloud.min_tls: 1.0 lets HY-TLS pass" in out
    assert out.rstrip().endswith("1 warning")


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        (
            "target",
            {"addresses": ["198.51.100.10"]},
            "target.addresses[0]: 198.51.100.10 is outside",
        ),
        (
            "environment",
            {
                "networks": ["192.0.2.0/24"],
                "endpoints": [{"name": "x", "address": "203.0.113.5", "ports": ["1/tcp"]}],
            },
            "environment.endpoints[0].address: 203.0.113.5 is outside",
        ),
    ],
)
def test_check_refuses_an_address_outside_the_networks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: object, shown: str
) -> None:
    # The target and the endpoints outside the networks are errors, not warnings: the
    # loader refuses them, and `check` says so on one line like `run` (exit 3).
    data = copy.deepcopy(SOUND)
    data[key] = value
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["profile", "check", str(path)]) == 3
    captured = capsys.readouterr()
    assert shown in " ".join(captured.err.split())
    assert captured.out == ""
