"""The profile loader: a frozen Profile, or a one-line ProfileError (file, key path, problem)."""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.errors import ProfileError
from conformance.profile import MAX_PROFILE_BYTES, load_profile
from conformance.profile_model import (
    HostSettings,
    LabSettings,
    Mode,
    PortSpec,
    ProbeSettings,
    StimulusSpec,
    Telemetry,
)
from tests.shared import shared_text

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "fixtures" / "profiles"

AIR_GAPPED: dict[str, Any] = {
    "name": "test-site",
    "mode": "air-gapped",
    "target": {"addresses": ["192.0.2.10"]},
    "environment": {
        "networks": ["192.0.2.0/24", "2001:db8:1::/64"],
        "endpoints": [
            {"name": "cucm", "address": "192.0.2.20", "ports": ["5060/udp", "5061/tcp"]},
            {"name": "ad", "address": "192.0.2.30", "ports": ["389/tcp"]},
        ],
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
    """`base` with keys set or deleted; `environment__endpoints__1__ports` is a key path."""
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


@pytest.fixture
def write(tmp_path: Path) -> Any:
    """Write a profile (a mapping, or raw YAML text) and return its path."""

    def _write(content: dict[str, Any] | str | bytes, name: str = "site.yaml") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def refused(write: Any) -> Any:
    """Load a profile that must be refused; return the error after checking its shape."""

    def _refused(content: dict[str, Any] | str | bytes) -> ProfileError:
        path = write(content)
        with pytest.raises(ProfileError) as info:
            load_profile(path)
        error = info.value
        message = str(error)
        assert "\n" not in message, message
        assert message == f"{path}: {error.key or '<top>'}: {error.problem}"
        return error

    return _refused


# --- what loads ----------------------------------------------------------------------------


def test_sample_air_gapped() -> None:
    profile = load_profile(PROFILES / "sample-air-gapped.yaml")
    assert profile.mode is Mode.AIR_GAPPED
    assert profile.target.addresses == (ipaddress.ip_address("192.0.2.10"),)
    assert [str(n) for n in profile.environment.networks] == ["192.0.2.0/24", "2001:db8:1::/64"]
    endpoints = {e.name: e for e in profile.environment.endpoints}
    assert set(endpoints) == {"cucm", "ad", "dns", "ntp"}
    assert [str(p) for p in endpoints["cucm"].ports] == [
        "5060/udp",
        "5060/tcp",
        "5061/tcp",
        "8443/tcp",
    ]
    assert endpoints["ntp"].address == ipaddress.ip_address("192.0.2.123")
    assert endpoints["ntp"].ports == (PortSpec(123, "udp"),)
    assert profile.cloud is None
    assert profile.proxy is None
    assert profile.telemetry is Telemetry.DISABLED
    assert profile.environment.strict is False


def test_sample_hybrid() -> None:
    profile = load_profile(str(PROFILES / "sample-hybrid.yaml"))
    assert profile.mode is Mode.HYBRID
    assert profile.cloud is not None
    assert profile.cloud.services == ("licensing", "telemetry")
    assert [str(e) for e in profile.cloud.endpoints] == [
        "api.imagicle.com:443",
        "grpc.imagicle.com:443",
        "*.imagicle.cloud:636",
    ]
    assert all(e.justification is None for e in profile.cloud.endpoints)
    assert profile.cloud.min_tls == "1.2"
    assert profile.telemetry is Telemetry.ENABLED


def _yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown, re.DOTALL)


def _interface_example() -> str:
    section = shared_text("spec/interface.md").split("## Deployment profile (YAML)")[1]
    return _yaml_blocks(section)[0]


def test_interface_example_loads_as_a_hybrid_profile(write: Any) -> None:
    # interface.md's example shows every key at once: with mode: hybrid it is valid as written.
    text = _interface_example().replace("mode: air-gapped ", "mode: hybrid     ", 1)
    profile = load_profile(write(text))
    assert profile.name == "acme-hq-ucx"
    assert profile.cloud is not None
    assert profile.cloud.services == ("licensing", "telemetry", "sso", "user-sync", "presence")
    assert profile.proxy is not None
    assert str(profile.proxy) == "192.0.2.80:3128"
    assert profile.telemetry is Telemetry.DISABLED


def test_interface_example_as_written_is_refused_for_its_hybrid_only_section(
    refused: Any,
) -> None:
    # As written it says mode: air-gapped beside the sections its own comments call
    # "hybrid only"; the loader names the first of them rather than ignoring it.
    error = refused(_interface_example())
    assert error.key == "cloud"
    assert "hybrid-only section" in error.problem


@pytest.mark.parametrize("doc", ["docs/profile.md", "README.md"])
def test_documented_examples_load(doc: str, write: Any) -> None:
    blocks = [b for b in _yaml_blocks((ROOT / doc).read_text(encoding="utf-8")) if "mode:" in b]
    assert blocks, f"{doc} has no profile example"
    for block in blocks:
        load_profile(write(block))


def test_profile_is_frozen(write: Any) -> None:
    profile = load_profile(write(AIR_GAPPED))
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.name = "other"  # type: ignore[misc]


def test_source_is_the_path_given(write: Any) -> None:
    path = write(AIR_GAPPED)
    assert load_profile(path).source == path
    assert load_profile(str(path)).source == path


def test_defaults(write: Any) -> None:
    profile = load_profile(write(changed(AIR_GAPPED, environment__endpoints=DELETE)))
    assert profile.environment.endpoints == ()
    assert profile.environment.strict is False
    assert profile.telemetry is Telemetry.DISABLED
    assert profile.window_seconds is None
    assert profile.lab == LabSettings()
    assert profile.probes == ProbeSettings()
    assert profile.stimuli == ()
    assert profile.host == HostSettings()


def test_values_are_normalised(write: Any) -> None:
    data = changed(
        HYBRID,
        environment__endpoints__0__ports=["5060/udp", "5061/tcp"],
        cloud__endpoints=["API.Imagicle.COM.:443", "*.EU.imagicle.com:8443/tcp"],
        cloud__hints=[{"address": "198.51.100.7", "name": "Api.Imagicle.com."}],
        target__addresses=["2001:DB8:1::A"],
    )
    profile = load_profile(write(data))
    assert profile.environment.endpoints[0].ports == (PortSpec(5060, "udp"), PortSpec(5061, "tcp"))
    assert profile.cloud is not None
    assert [str(e) for e in profile.cloud.endpoints] == [
        "api.imagicle.com:443",
        "*.eu.imagicle.com:8443",
    ]
    assert profile.cloud.hints[0].name == "api.imagicle.com"
    assert profile.target.addresses == (ipaddress.ip_address("2001:db8:1::a"),)


def test_yaml_anchors_within_bounds_are_fine(write: Any) -> None:
    text = """\
name: anchors
mode: air-gapped
target: {addresses: [192.0.2.10]}
environment:
  networks: [192.0.2.0/24]
  endpoints:
    - {name: dc1, address: 192.0.2.30, ports: &ad [389/tcp, 636/tcp]}
    - {name: dc2, address: 192.0.2.31, ports: *ad}
"""
    profile = load_profile(write(text))
    assert profile.environment.endpoints[1].ports == profile.environment.endpoints[0].ports


def test_exactly_one_mebibyte_is_accepted(write: Any) -> None:
    text = yaml.safe_dump(AIR_GAPPED)
    text += "#" * (MAX_PROFILE_BYTES - len(text) - 1) + "\n"
    assert len(text.encode()) == MAX_PROFILE_BYTES
    assert load_profile(write(text)).name == "test-site"


def test_utf16_with_bom_is_read(write: Any) -> None:
    assert load_profile(write(yaml.safe_dump(AIR_GAPPED).encode("utf-16"))).name == "test-site"


# --- the file and its YAML -----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"nowhere\.yaml: <top>: no such file$"):
        load_profile(tmp_path / "nowhere.yaml")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="is a directory"):
        load_profile(tmp_path)


def test_over_one_mebibyte_is_refused(refused: Any) -> None:
    error = refused("#" * MAX_PROFILE_BYTES + "\n")
    assert error.problem == "larger than 1 MiB; a profile is a page of YAML"


@pytest.mark.parametrize(
    ("content", "key", "problem"),
    [
        (b"name: caf\xe9\n", "", "not UTF-8 text: byte 0xe9 at offset 9"),
        ("name: a\x00b\n", "", "character #x0000 at offset 7 is not allowed in YAML"),
        ("name: [a\nmode: x\n", "line 2, column 5", "not valid YAML: expected ',' or ']'"),
        ("name: a\n\tmode: x\n", "line 2, column 1", "not valid YAML: found character '\\t'"),
        ("a: 1\n---\nb: 2\n", "line 2, column 1", "expected a single document"),
        ("? [a]\n: 1\n", "line 1, column 3", "found unhashable key"),
        ("", "", "empty; a profile is a mapping with name, mode, target, environment"),
        ("# only a comment\n", "", "empty; a profile is a mapping"),
        ("- name\n- mode\n", "", "expected a mapping with name, mode, target, environment, cloud"),
        ("just text\n", "", 'got the string "just text"'),
    ],
)
def test_not_a_yaml_mapping(refused: Any, content: str | bytes, key: str, problem: str) -> None:
    error = refused(content)
    assert error.key == key
    assert problem in error.problem


def test_duplicate_top_level_key(refused: Any) -> None:
    error = refused("name: a\nmode: air-gapped\nname: b\n")
    assert (error.key, error.problem) == ("name", "line 3: duplicate key (first at line 1)")


def test_duplicate_nested_key(refused: Any) -> None:
    text = """\
name: a
mode: air-gapped
target: {addresses: [192.0.2.10]}
environment:
  networks: [192.0.2.0/24]
  endpoints:
    - name: cucm
      address: 192.0.2.20
      ports: [5060/udp]
      address: 192.0.2.21
"""
    error = refused(text)
    assert error.key == "environment.endpoints[0].address"
    assert error.problem == "line 10: duplicate key (first at line 8)"


def test_alias_bomb_is_refused_before_expansion(refused: Any) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    error = refused("\n".join(lines) + "\n")
    assert "expands to more than 100000 values" in error.problem


def test_recursive_alias_is_refused(refused: Any) -> None:
    error = refused("name: &x [*x]\n")
    assert error.key == "name[0]"
    assert "refers to its own anchor" in error.problem


def test_deep_nesting_is_refused(refused: Any) -> None:
    error = refused("name: " + "[" * 40 + "]" * 40 + "\n")
    assert "nested deeper than 32 levels" in error.problem


def test_nesting_beyond_the_yaml_parser_is_refused(refused: Any) -> None:
    error = refused("name: " + "[" * 5000 + "]" * 5000 + "\n")
    assert error.problem == "not valid YAML: nested too deeply"


# --- keys ----------------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_the_closest(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, modee="hybrid"))
    assert error.key == "modee"
    assert error.problem.startswith('unknown key; did you mean "mode"? allowed here: name, mode,')
    assert error.problem.endswith("draft, lab, probes, stimuli, host")


def test_unknown_nested_key(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, environment__endpoints__1__port=["389/tcp"]))
    assert error.key == "environment.endpoints[1].port"
    assert error.problem == 'unknown key; did you mean "ports"? allowed here: name, address, ports'


def test_unknown_key_without_a_close_match(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, **{"zzz.q": 1}))
    assert error.key == '"zzz.q"'
    assert error.problem.startswith("unknown key; allowed here:")


def test_non_string_key(refused: Any) -> None:
    error = refused("name: a\n1: b\n")
    assert (error.key, error.problem) == ("", "keys are names, got the number 1")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"name": DELETE}, "name"),
        ({"mode": DELETE}, "mode"),
        ({"target": DELETE}, "target"),
        ({"environment": DELETE}, "environment"),
        ({"target__addresses": DELETE}, "target.addresses"),
        ({"environment__networks": DELETE}, "environment.networks"),
        ({"environment__endpoints__0__ports": DELETE}, "environment.endpoints[0].ports"),
    ],
)
def test_missing_required_key(refused: Any, change: dict[str, object], key: str) -> None:
    error = refused(changed(AIR_GAPPED, **change))
    assert (error.key, error.problem) == (key, "missing; this key is required")


# --- types ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("mode: off", "mode", "expected air-gapped or hybrid, got the boolean false (YAML reads"),
        ("mode: yes", "mode", "got the boolean true"),
        ("mode: airgapped", "mode", '"airgapped" is not air-gapped or hybrid; did you mean'),
        ("mode: Hybrid", "mode", 'did you mean "hybrid"?'),
        ("name: no", "name", "expected a string, got the boolean false"),
        ("name: 2024-05-01", "name", "expected a string, got the date 2024-05-01"),
        ("name: 42", "name", "expected a string, got the number 42"),
        ("name: [a]", "name", "expected a string, got a list"),
        ("name: ''", "name", "empty; write some text"),
        ('name: "a\\nb"', "name", "holds a line break or control character; write one line"),
        ("name:", "name", "expected a string, got nothing (an empty value)"),
        ("target: [192.0.2.10]", "target", "expected a mapping with addresses, got a list"),
    ],
)
def test_wrong_scalar(refused: Any, text: str, key: str, problem: str) -> None:
    base = yaml.safe_dump(changed(AIR_GAPPED, **{key: DELETE}), sort_keys=False)
    error = refused(f"{text}\n{base}")
    assert error.key == key
    assert problem in error.problem


def test_long_name(refused: Any) -> None:
    assert refused(changed(AIR_GAPPED, name="x" * 201)).problem == "longer than 200 characters"


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (
            {"target__addresses": "192.0.2.10"},
            "target.addresses",
            'expected a list, got the string "192.0.2.10" (write [item] even for one item)',
        ),
        ({"target__addresses": []}, "target.addresses", "empty; list at least one item"),
        ({"environment__networks": []}, "environment.networks", "empty; list at least one"),
        ({"environment__strict": "yes"}, "environment.strict", "expected true or false, got the"),
        ({"environment__endpoints": {"a": 1}}, "environment.endpoints", "expected a list, got a"),
        (
            {"environment__endpoints__0": "cucm"},
            "environment.endpoints[0]",
            "expected a mapping with name, address, ports, got the string",
        ),
    ],
)
def test_wrong_container(refused: Any, change: dict[str, object], key: str, problem: str) -> None:
    error = refused(changed(AIR_GAPPED, **change))
    assert error.key == key
    assert problem in error.problem


# --- addresses, networks, ports ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("192.0.2.300", '"192.0.2.300" is not an IPv4 or IPv6 address'),
        ("ucx.example.com", '"ucx.example.com" is not an IPv4 or IPv6 address'),
        ("192.0.2.10/32", '"192.0.2.10/32" is a network; write an address without /prefix'),
        ("fe80::1%eth0", "has a zone index"),
        ("::ffff:192.0.2.10", "is IPv4-mapped; write 192.0.2.10"),
        (True, "got the boolean true"),
    ],
)
def test_bad_address(refused: Any, value: object, problem: str) -> None:
    error = refused(changed(AIR_GAPPED, target__addresses=[value]))
    assert error.key == "target.addresses[0]"
    assert problem in error.problem


def test_unquoted_ipv6_read_as_a_number(refused: Any) -> None:
    # YAML 1.1 reads 1:2:3 as a base-60 integer.
    text = yaml.safe_dump(changed(AIR_GAPPED, target=DELETE)) + "target: {addresses: [1:2:3]}\n"
    error = refused(text)
    assert error.key == "target.addresses[0]"
    assert error.problem.startswith("line ")
    assert '"1:2:3" is read by YAML 1.1 as a base-60 number; quote it' in error.problem


@pytest.mark.parametrize("written", ["1:30", "1:30.5", "-1:30", "+1:00:00"])
def test_a_base_60_duration_is_refused_not_read_as_seconds(refused: Any, written: str) -> None:
    """`window: 1:30` would be 90 seconds and `1:00:00` 3600, silently: never what a profile
    means by a clock-like value. A quoted "1:30" is a string, refused as no duration."""
    text = yaml.safe_dump(AIR_GAPPED) + f"window: {written}\n"
    error = refused(text)
    assert error.key == "window"
    assert "base-60 number" in error.problem
    quoted = refused(yaml.safe_dump(AIR_GAPPED) + f'window: "{written}"\n')
    assert "is not a duration" in quoted.problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("192.0.2.1/24", '"192.0.2.1/24" has host bits set; did you mean 192.0.2.0/24?'),
        ("2001:db8:1::1/64", "has host bits set; did you mean 2001:db8:1::/64?"),
        ("192.0.2.0/33", '"192.0.2.0/33" is not an IPv4 or IPv6 network'),
        ("corp", '"corp" is not an IPv4 or IPv6 network'),
        ("fe80::%eth0/64", "has a zone index"),
        (24, "expected a network such as 192.0.2.0/24, got the number 24"),
    ],
)
def test_bad_network(refused: Any, value: object, problem: str) -> None:
    error = refused(changed(AIR_GAPPED, environment__networks=["192.0.2.0/24", value]))
    assert error.key == "environment.networks[1]"
    assert problem in error.problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "198.51.100.0/255.255.255.0",
            '"198.51.100.0/255.255.255.0" is not in CIDR prefix form (address/prefix length):'
            " write 198.51.100.0/24",
        ),
        ("198.51.100.0/0.0.0.255", "write 198.51.100.0/24"),
        ("198.51.100.0/024", "write 198.51.100.0/24"),
        ("198.51.100.0/\u0662\u0664", "write 198.51.100.0/24"),  # Arabic-Indic "24"
        ("2001:db8:2::/064", "write 2001:db8:2::/64"),
        ("198.51.100.0/+24", "is not in CIDR prefix form"),
        ("198.51.100.0/255.0.255.0", '"198.51.100.0/255.0.255.0" is not an IPv4 or IPv6 network'),
        ("198.51.100.0/", "is not an IPv4 or IPv6 network"),
    ],
)
def test_network_only_in_cidr_prefix_form(refused: Any, value: str, problem: str) -> None:
    error = refused(changed(AIR_GAPPED, environment__networks=["192.0.2.0/24", value]))
    assert error.key == "environment.networks[1]"
    assert problem in error.problem


def test_single_host_network_is_fine(write: Any) -> None:
    data = changed(AIR_GAPPED, environment__networks=["192.0.2.10", "192.0.2.20/32", "192.0.2.30"])
    assert len(load_profile(write(data)).environment.networks) == 3


def test_port_without_transport_message_matches_the_readme(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, environment__endpoints__1__ports=["5060/sctp"]))
    path = error.path
    assert str(error) == (
        f'{path}: environment.endpoints[1].ports[0]: "5060/sctp" is not N/tcp or N/udp'
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (5060, "5060 has no transport; write 5060/tcp or 5060/udp (controls.md decision 2)"),
        ("5060", "5060 has no transport; write 5060/tcp or 5060/udp"),
        ("5060/sctp", '"5060/sctp" is not N/tcp or N/udp'),
        ("tcp/5060", '"tcp/5060" is not N/tcp or N/udp'),
        ("5060 / tcp", "is not N/tcp or N/udp"),
        ("5000-5100/udp", "is not N/tcp or N/udp"),
        ("70000/tcp", '"70000/tcp": port 70000 is out of range 1-65535'),
        ("0/udp", "port 0 is out of range 1-65535"),
        (False, "expected N/tcp or N/udp, got the boolean false"),
    ],
)
def test_bad_port(refused: Any, value: object, problem: str) -> None:
    error = refused(changed(AIR_GAPPED, environment__endpoints__0__ports=["5061/tcp", value]))
    assert error.key == "environment.endpoints[0].ports[1]"
    assert problem in error.problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("5060/TCP", '"5060/TCP" is not N/tcp or N/udp: write 5060/tcp'),
        ("53/Udp", '"53/Udp" is not N/tcp or N/udp: write 53/udp'),
        ("053/udp", '"053/udp" is not N/tcp or N/udp: write 53/udp'),
        ("\u0665\u0663/udp", "is not N/tcp or N/udp: write 53/udp"),  # Arabic-Indic "53"
        ("\uff15\uff13/udp", "is not N/tcp or N/udp: write 53/udp"),  # full-width "53"
        ("+53/udp", '"+53/udp" is not N/tcp or N/udp'),
        (" 53/udp", "is not N/tcp or N/udp: write 53/udp"),
        ("0053", "is not N/tcp or N/udp"),
        ("\u0665\u0663", "is not N/tcp or N/udp"),
        ("00000/tcp", "is not N/tcp or N/udp"),
        ("070000/tcp", "is not N/tcp or N/udp"),
    ],
)
def test_port_has_one_spelling(refused: Any, value: str, problem: str) -> None:
    error = refused(changed(AIR_GAPPED, environment__endpoints__0__ports=["5061/tcp", value]))
    assert error.key == "environment.endpoints[0].ports[1]"
    assert problem in error.problem


def test_endpoint_without_ports(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, environment__endpoints__0__ports=[]))
    assert error.key == "environment.endpoints[0].ports"


def test_target_outside_the_environment(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, target__addresses=["192.0.2.10", "198.51.100.10"]))
    assert error.key == "target.addresses[1]"
    assert error.problem == (
        "198.51.100.10 is outside environment.networks;"
        " the target is part of the Customer Environment (HA 1)"
    )


def test_ipv6_target_inside_the_environment(write: Any) -> None:
    profile = load_profile(write(changed(AIR_GAPPED, target__addresses=["2001:db8:1::10"])))
    assert profile.target.addresses == (ipaddress.ip_address("2001:db8:1::10"),)


def test_endpoint_outside_the_environment(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, environment__endpoints__1__address="203.0.113.30"))
    assert error.key == "environment.endpoints[1].address"
    assert "outside environment.networks; on-prem endpoints are part of the" in error.problem


# --- mode-dependent keys -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["cloud", "proxy"])
def test_hybrid_only_section_in_air_gapped_mode(refused: Any, key: str) -> None:
    error = refused(changed(AIR_GAPPED, **{key: HYBRID["cloud"] if key == "cloud" else "x"}))
    assert error.key == key
    assert error.problem.startswith("hybrid-only section: air-gapped mode has no cloud")
    assert error.problem.endswith("remove it or set mode: hybrid")


def test_telemetry_enabled_in_air_gapped_mode(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, telemetry="enabled"))
    assert error.key == "telemetry"
    assert error.problem.startswith("enabled is hybrid-only; air-gapped mode implies disabled")


def test_telemetry_disabled_may_be_written_in_air_gapped_mode(write: Any) -> None:
    profile = load_profile(write(changed(AIR_GAPPED, telemetry="disabled")))
    assert profile.telemetry is Telemetry.DISABLED


def test_hybrid_must_state_telemetry(refused: Any) -> None:
    error = refused(changed(HYBRID, telemetry=DELETE))
    assert error.key == "telemetry"
    assert error.problem.startswith("missing; a hybrid profile must say enabled or disabled")
    assert "(CT 3)" in error.problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("telemetry: off", "got the boolean false (YAML reads unquoted yes/no/on/off/true/false"),
        ("telemetry: off", "quote the value: disabled)"),
        ("telemetry: on", "quote the value: enabled)"),
        ("telemetry: maybe", '"maybe" is not enabled or disabled'),
        ("telemetry: Disabled", 'did you mean "disabled"?'),
    ],
)
def test_bad_telemetry(refused: Any, text: str, problem: str) -> None:
    base = yaml.safe_dump(changed(HYBRID, telemetry=DELETE), sort_keys=False)
    error = refused(f"{base}{text}\n")
    assert error.key == "telemetry"
    assert problem in error.problem


def test_telemetry_enabled_needs_the_telemetry_service(refused: Any) -> None:
    error = refused(changed(HYBRID, cloud__services=["licensing"]))
    assert error.key == "telemetry"
    assert "cloud.services does not activate telemetry" in error.problem


def test_telemetry_enabled_without_cloud_section(refused: Any) -> None:
    error = refused(changed(HYBRID, cloud=DELETE))
    assert error.key == "telemetry"


def test_hybrid_with_no_service_activated(write: Any) -> None:
    # HY-DEACTIVATED: hybrid mode, nothing activated, judged like air-gapped.
    data = changed(HYBRID, cloud={"services": []}, telemetry="disabled")
    profile = load_profile(write(data))
    assert profile.cloud is not None
    assert profile.cloud.services == ()
    assert profile.cloud.endpoints == ()
    assert load_profile(write(changed(data, cloud=DELETE))).cloud is None


# --- cloud ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("services", "key", "problem"),
    [
        (["licensing", "sso2"], "cloud.services[1]", '"sso2" is not one of licensing, telemetry'),
        (["licensing", "sso2"], "cloud.services[1]", 'did you mean "sso"?'),
        (["licensing", "licensing"], "cloud.services[1]", '"licensing" is listed twice'),
        (["telemetry"], "cloud.services", "telemetry need licensing"),
        ("licensing", "cloud.services", "expected a list, got the string"),
        ([True], "cloud.services[0]", "got the boolean true"),
    ],
)
def test_bad_services(refused: Any, services: object, key: str, problem: str) -> None:
    error = refused(changed(HYBRID, cloud__services=services))
    assert error.key == key
    assert problem in error.problem


@pytest.mark.parametrize(
    "service",
    [
        "licensing",
        "voice-analytics",
        "smartflows",
        "virtual-receptionist",
    ],
)
def test_services_without_the_licensing_prerequisite(write: Any, service: str) -> None:
    data = changed(HYBRID, cloud__services=[service], telemetry="disabled")
    assert load_profile(write(data)).cloud is not None


def test_every_service_together(write: Any) -> None:
    services = [
        "licensing",
        "telemetry",
        "sso",
        "user-sync",
        "presence",
        "call-control",
        "voice-analytics",
        "smartflows",
        "virtual-receptionist",
    ]
    profile = load_profile(write(changed(HYBRID, cloud__services=services)))
    assert profile.cloud is not None
    assert profile.cloud.services == tuple(services)
    assert profile.cloud.activates("call-control")


def test_activated_service_needs_endpoints(refused: Any) -> None:
    error = refused(changed(HYBRID, cloud__endpoints=DELETE))
    assert error.key == "cloud.endpoints"
    assert "list the endpoints the target may reach" in error.problem


@pytest.mark.parametrize(
    ("endpoint", "key", "problem"),
    [
        ("api.imagicle.com", "cloud.endpoints[1]", "has no port; write name:port"),
        ("api.imagicle.com:https", "cloud.endpoints[1]", '"https" is not a port number'),
        ("api.imagicle.com:443/UDP", "cloud.endpoints[1]", "lower case (443/udp)"),
        ("api.imagicle.com:443/Tcp", "cloud.endpoints[1]", "lower case (443/tcp)"),
        ("api.imagicle.com:443/sctp", "cloud.endpoints[1]", '"sctp" is not tcp or udp'),
        ("api.imagicle.com:443/", "cloud.endpoints[1]", '"" is not tcp or udp'),
        ("api.imagicle.com:\u0664\u0664\u0663", "cloud.endpoints[1]", "is not a port number"),
        ("api.imagicle.com:443/udp/udp", "cloud.endpoints[1]", "is not tcp or udp"),
        ("api.imagicle.com:+443", "cloud.endpoints[1]", "is not a port number"),
        ("api.imagicle.com:0", "cloud.endpoints[1]", "port 0 is out of range"),
        ("api.imagicle.com:65536", "cloud.endpoints[1]", "port 65536 is out of range"),
        ("a.*.imagicle.com:443", "cloud.endpoints[1]", "whole first label"),
        ("*imagicle.com:443", "cloud.endpoints[1]", "whole first label"),
        ("*:443", "cloud.endpoints[1]", "a lone *"),
        ("*.com:443", "cloud.endpoints[1]", "whole top-level domain"),
        ("api..imagicle.com:443", "cloud.endpoints[1]", "empty label"),
        ("198.51.100.7:443", "cloud.endpoints[1]", "is an IP address, not a name"),
        ("[2001:db8::7]:443", "cloud.endpoints[1]", "is an IP address, not a name"),
        ("a_b.imagicle.com:443", None, None),
        ("api.imagicle.com:0443", "cloud.endpoints[1]", "write api.imagicle.com:443"),
        ("api.imagicle.com:\u0664\u0664\u0663", "cloud.endpoints[1]", "write api.imagicle.com:443"),
        ("api.imagicle.com:443/TCP", "cloud.endpoints[1]", "(443/tcp): api.imagicle.com:443/tcp"),
        (443, "cloud.endpoints[1]", 'expected "name:port" or {endpoint:'),
        ({"endpoint": 443}, "cloud.endpoints[1].endpoint", 'expected "name:port", got the number'),
        ({"endpont": "x:1"}, "cloud.endpoints[1].endpont", 'unknown key; did you mean "endpoint"?'),
        ({"justification": "x"}, "cloud.endpoints[1].endpoint", "missing; this key is required"),
    ],
)
def test_bad_cloud_endpoint(
    write: Any, endpoint: object, key: str | None, problem: str | None
) -> None:
    path = write(changed(HYBRID, cloud__endpoints=["api.imagicle.com:443", endpoint]))
    if key is None:
        load_profile(path)
        return
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.key == key
    assert problem is not None
    assert problem in info.value.problem


@pytest.mark.parametrize(
    "endpoint",
    [
        "api.imagicle.com:443",
        "grpc.imagicle.com:443",
        "*.imagicle.com:443",
        "*.imagicle.cloud:636",
        "licensing.imagicle.com:443",  # under *.imagicle.com
        "*.eu.imagicle.cloud:443",  # within *.imagicle.cloud
    ],
)
def test_documented_endpoints_need_no_justification(write: Any, endpoint: str) -> None:
    profile = load_profile(write(changed(HYBRID, cloud__endpoints=[endpoint])))
    assert profile.cloud is not None
    assert profile.cloud.endpoints[0].justification is None


@pytest.mark.parametrize(
    ("written", "transport", "shown"),
    [
        ("api.imagicle.com:443", "tcp", "api.imagicle.com:443"),
        ("api.imagicle.com:443/tcp", "tcp", "api.imagicle.com:443"),
        ("api.imagicle.com:443/udp", "udp", "api.imagicle.com:443/udp"),
        ("*.imagicle.cloud:8443/udp", "udp", "*.imagicle.cloud:8443/udp"),
    ],
)
def test_cloud_endpoint_transport(write: Any, written: str, transport: str, shown: str) -> None:
    """`name:port/udp` allows QUIC to the endpoint; str() writes the profile's spelling back."""
    profile = load_profile(write(changed(HYBRID, cloud__endpoints=[written])))
    assert profile.cloud is not None
    (endpoint,) = profile.cloud.endpoints
    assert endpoint.transport == transport and str(endpoint) == shown


def test_error_message_shows_the_accepted_spelling(refused: Any) -> None:
    error = refused(changed(HYBRID, cloud__endpoints=["api.imagicle.com:https"]))
    assert "name:port (TCP), name:port/tcp, or name:port/udp (QUIC)" in error.problem


def test_undocumented_udp_endpoint_names_its_transport(refused: Any) -> None:
    error = refused(changed(HYBRID, cloud__endpoints=["quic.example.net:443/udp"]))
    assert 'endpoint: "quic.example.net:443/udp"' in error.problem


@pytest.mark.parametrize(
    "endpoint",
    [
        "crl.example.net:80",
        "imagicle.com:443",
        "*.amazonaws.com:443",
        "imagicle.cloud.evil.example:443",
    ],
)
def test_other_endpoints_need_a_justification(refused: Any, endpoint: str) -> None:
    error = refused(changed(HYBRID, cloud__endpoints=["api.imagicle.com:443", endpoint]))
    assert error.key == "cloud.endpoints[1]"
    assert "is not a documented Imagicle endpoint" in error.problem
    assert "(controls.md decision 5)" in error.problem


def test_justified_endpoint(write: Any) -> None:
    justified = {
        "endpoint": "crl.example.net:80",
        "justification": "Windows certificate revocation\n  checks for the\nlicensing CA.\n",
    }
    profile = load_profile(
        write(changed(HYBRID, cloud__endpoints=["api.imagicle.com:443", justified]))
    )
    assert profile.cloud is not None
    endpoint = profile.cloud.endpoints[1]
    assert (endpoint.pattern, endpoint.port) == ("crl.example.net", 80)
    assert endpoint.justification == "Windows certificate revocation checks for the licensing CA."


@pytest.mark.parametrize(
    ("justification", "problem"),
    [
        ("   ", "empty; say why the target may reach this endpoint"),
        (None, "expected a string, got nothing"),
        ("x" * 2001, "longer than 2000 characters"),
    ],
)
def test_bad_justification(refused: Any, justification: object, problem: str) -> None:
    endpoint = {"endpoint": "crl.example.net:80", "justification": justification}
    error = refused(changed(HYBRID, cloud__endpoints=[endpoint]))
    assert error.key == "cloud.endpoints[0].justification"
    assert problem in error.problem


def test_missing_justification_in_mapping_form(refused: Any) -> None:
    error = refused(changed(HYBRID, cloud__endpoints=[{"endpoint": "crl.example.net:80"}]))
    assert error.key == "cloud.endpoints[0].justification"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("min_tls: 1.2", "1.2"), ("min_tls: '1.3'", "1.3"), ("min_tls: 1.0", "1.0"), ("", "1.2")],
)
def test_min_tls(write: Any, text: str, expected: str) -> None:
    base = yaml.safe_dump(changed(HYBRID, cloud=DELETE), sort_keys=False)
    cloud = "cloud:\n  services: [licensing, telemetry]\n  endpoints: [api.imagicle.com:443]\n"
    profile = load_profile(write(f"{base}{cloud}  {text}\n"))
    assert profile.cloud is not None
    assert profile.cloud.min_tls == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("1.4", '"1.4" is not one of 1.0, 1.1, 1.2, 1.3'),
        (1, "expected one of 1.0, 1.1, 1.2, 1.3, got the number 1"),
        ("TLSv1.2", "is not one of 1.0, 1.1, 1.2, 1.3"),
    ],
)
def test_bad_min_tls(refused: Any, value: object, problem: str) -> None:
    error = refused(changed(HYBRID, cloud__min_tls=value))
    assert error.key == "cloud.min_tls"
    assert problem in error.problem


def test_hints(write: Any) -> None:
    hints = [{"address": "198.51.100.7", "name": "grpc.imagicle.com"}]
    profile = load_profile(write(changed(HYBRID, cloud__hints=hints)))
    assert profile.cloud is not None
    assert profile.cloud.hints[0].address == ipaddress.ip_address("198.51.100.7")


@pytest.mark.parametrize(
    ("hint", "key", "problem"),
    [
        ({"address": "198.51.100.7", "name": "*.imagicle.com"}, "name", "a hint names one host"),
        ({"address": "198.51.100.7", "name": "a..b"}, "name", "is not a valid name: empty label"),
        ({"address": "198.51.100", "name": "x.example"}, "address", "is not an IPv4 or IPv6"),
        ({"address": "198.51.100.7"}, "name", "missing; this key is required"),
    ],
)
def test_bad_hint(refused: Any, hint: dict[str, str], key: str, problem: str) -> None:
    error = refused(changed(HYBRID, cloud__hints=[hint]))
    assert error.key == f"cloud.hints[0].{key}"
    assert problem in error.problem


# --- proxy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "address", "port"),
    [
        ("192.0.2.80:3128", "192.0.2.80", 3128),
        ("[2001:db8:1::80]:8080", "2001:db8:1::80", 8080),
    ],
)
def test_proxy(write: Any, value: str, address: str, port: int) -> None:
    profile = load_profile(write(changed(HYBRID, proxy=value)))
    assert profile.proxy is not None
    assert profile.proxy.address == ipaddress.ip_address(address)
    assert profile.proxy.port == port
    assert str(profile.proxy) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("192.0.2.80", "has no port; write address:port"),
        ("2001:db8:1::80:3128", "write an IPv6 proxy as [address]:port"),
        ("[2001:db8:1::80]", "is not [address]:port"),
        ("proxy.corp.example:3128", "the harness never resolves names (controls.md decision 7)"),
        ("192.0.2.80:squid", '"squid" is not a port number'),
        ("192.0.2.80:99999", "port 99999 is out of range"),
        ("192.0.2.80:03128", "without leading zeros: write 192.0.2.80:3128"),
        ("[2001:db8:1::80]:\u0668\u0660", "write [2001:db8:1::80]:80"),
        ("198.51.100.80:3128", "outside environment.networks; the proxy is part of the Customer"),
        (3128, 'expected "address:port", got the number 3128'),
    ],
)
def test_bad_proxy(refused: Any, value: object, problem: str) -> None:
    error = refused(changed(HYBRID, proxy=value))
    assert error.key == "proxy"
    assert problem in error.problem


# --- window and later sections -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("20s", 20.0),
        ("2m", 120.0),
        (30, 30.0),
        ("30", 30.0),
        ("1.5m", 90.0),
        ("1h", 3600.0),
        (0.5, 0.5),
    ],
)
def test_window(write: Any, value: object, seconds: float) -> None:
    assert load_profile(write(changed(AIR_GAPPED, window=value))).window_seconds == seconds


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0s", "0 seconds is not between 0 and 86400"),
        (-5, "-5 seconds is not between 0 and 86400"),
        (86401, "86401 seconds is not between"),
        ("25h", "90000 seconds is not between"),
        ("2d", '"2d" is not a duration such as 20s, 2m or 30'),
        ("soon", '"soon" is not a duration'),
        (True, "got the boolean true"),
        ([20], "expected a duration such as 20s, 2m or 30, got a list"),
    ],
)
def test_bad_window(refused: Any, value: object, problem: str) -> None:
    error = refused(changed(AIR_GAPPED, window=value))
    assert error.key == "window"
    assert problem in error.problem


def test_live_target_sections_are_typed(write: Any) -> None:
    data = changed(
        AIR_GAPPED,
        lab={"perimeter": "open", "periods": {"sip": 2}, "intercept": "auto"},
        probes={"perimeter": True},
        stimuli=[{"at": "1.5s", "shell": "true"}, {"at": 500, "action": "restart"}],
    )
    profile = load_profile(write(data))
    assert profile.lab == LabSettings(perimeter="open", periods=(("sip", 2.0),))
    assert profile.probes == ProbeSettings(perimeter=True)
    assert profile.stimuli == (
        StimulusSpec(1.5, "shell", command="true"),
        StimulusSpec(500.0, "action", action="restart"),
    )


@pytest.mark.parametrize(
    ("key", "value", "where", "problem"),
    [
        ("host", "ssh://ucx", "host", "expected a mapping with ssh_config"),
        ("lab", True, "lab", "expected a mapping with perimeter"),
        ("lab", {"faults": ["x"]}, "lab.faults", "unknown key"),
        ("lab", {"periods": {"sip": 0}}, "lab.periods.sip", "a positive number of seconds"),
        ("lab", {"periods": {"sipp": 1}}, "lab.periods.sipp", 'did you mean "sip"'),
        ("lab", {"intercept": "yes"}, "lab.intercept", "expected true, false or auto"),
        ("lab", {"intercept": True}, "lab.intercept", "the profile declares none"),
        ("lab", {"cloud_cert": "bogus"}, "lab.cloud_cert", "is not one of valid, untrusted"),
        ("probes", {"perimeter": "yes"}, "probes.perimeter", "expected true or false"),
        ("probes", [True], "probes", "expected a mapping with perimeter"),
        ("stimuli", {"at": 1}, "stimuli", "expected a list"),
        ("stimuli", [{"action": "restart"}], "stimuli[0].at", "missing"),
        ("stimuli", [{"at": "-1s", "shell": "x"}], "stimuli[0].at", "is not a duration"),
        ("stimuli", [{"at": "\u0665s", "shell": "x"}], "stimuli[0].at", "is not a duration"),
        ("stimuli", [{"at": 1}], "stimuli[0]", "give exactly one of action, http, shell"),
        ("stimuli", [{"at": 1, "shell": " "}], "stimuli[0].shell", "empty"),
        (
            "stimuli",
            [{"at": 1, "http": {"url": "http://192.0.2.9/", "body": "x"}}],
            "stimuli[0].http.body",
            "unknown key",
        ),
        (
            "stimuli",
            [{"at": 1, "http": {"method": "PATCH", "url": "http://192.0.2.9/"}}],
            "stimuli[0].http.method",
            "is not one of get, post",
        ),
        (
            "stimuli",
            [{"at": 1, "http": {"url": "ftp://192.0.2.9/"}}],
            "stimuli[0].http.url",
            "is not an http(s) URL",
        ),
    ],
)
def test_live_target_sections_are_checked_on_load(
    refused: Any, key: str, value: object, where: str, problem: str
) -> None:
    error = refused(changed(AIR_GAPPED, **{key: value}))
    assert (error.key, problem in error.problem) == (where, True), error


def test_image_is_not_a_profile_key(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, image={"name": "ucx:1"}))
    assert error.key == "image"
    assert "run --image IMAGE" in error.problem


def test_lab_networks_are_the_lab_topology() -> None:
    from conformance.lab import topology as topo
    from conformance.profile_model import LAB_NETWORKS

    plan = (topo.ONPREM_V4, topo.ONPREM_V6, *topo.INTERNET_V4, topo.INTERNET_V6)
    assert set(LAB_NETWORKS) == set(plan)


# --- observation.minimum_window and draft (interface.md) -----------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("1h", 3600.0), ("30m", 1800.0), ("2d", 172800.0), ("90s", 90.0), (3600, 3600.0)],
)
def test_minimum_window_durations(write: Any, written: object, seconds: float) -> None:
    profile = load_profile(write(changed(AIR_GAPPED, observation={"minimum_window": written})))
    assert profile.minimum_window_seconds == seconds


def test_minimum_window_absent_by_default(write: Any) -> None:
    assert load_profile(write(AIR_GAPPED)).minimum_window_seconds is None
    assert load_profile(write(changed(AIR_GAPPED, observation={}))).minimum_window_seconds is None


@pytest.mark.parametrize("written", ["1 week", "-1h", "0", "\u0665h", True, "400d"])
def test_minimum_window_refused(refused: Any, written: object) -> None:
    error = refused(changed(AIR_GAPPED, observation={"minimum_window": written}))
    assert error.key == "observation.minimum_window"


def test_observation_unknown_key_refused(refused: Any) -> None:
    error = refused(changed(AIR_GAPPED, observation={"minimum": "1h"}))
    assert error.key == "observation.minimum"


def test_draft_key(write: Any, refused: Any) -> None:
    assert load_profile(write(changed(AIR_GAPPED, draft=True))).draft is True
    assert load_profile(write(AIR_GAPPED)).draft is False
    assert refused(changed(AIR_GAPPED, draft="yes please")).key == "draft"
