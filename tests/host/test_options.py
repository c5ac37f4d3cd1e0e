"""The profile's `host:` section is checked when the profile loads (docs/profile.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.errors import ProfileError
from conformance.host.options import host_options
from conformance.profile import load_profile

BASE = (
    "name: x\nmode: air-gapped\ntarget: {addresses: [192.0.2.10]}\n"
    "environment: {networks: [192.0.2.0/24]}\n"
)


def _write(tmp_path: Path, host: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(BASE + f"host: {host}\n")
    return path


@pytest.mark.parametrize(
    ("host", "key", "problem"),
    [
        ("{sudoo: true}", "host.sudoo", "unknown key"),
        ("{identity: ssh/missing}", "host.identity", "no such file"),
        ("{known_hosts: 7}", "host.known_hosts", "expected a file path"),
        ("{settings: etc/ucx.json}", "host.settings", "absolute path"),
        ("{command_timeout: 0}", "host.command_timeout", "between 0 and 600"),
        ("{sudo: 'yes'}", "host.sudo", "true or false"),
        ("{capture: 'eth0; reboot'}", "host.capture", "interface name"),
        ("[eth0]", "host", "expected a mapping"),
    ],
)
def test_bad_host_section_fails_on_load(tmp_path: Path, host: str, key: str, problem: str) -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile(_write(tmp_path, host))
    assert caught.value.key == key and problem in caught.value.problem, caught.value


def test_paths_are_relative_to_the_profile(tmp_path: Path) -> None:
    (tmp_path / "ssh").mkdir()
    (tmp_path / "ssh" / "known_hosts").write_text("")
    (tmp_path / "ssh" / "id").write_text("")
    profile = load_profile(
        _write(tmp_path, "{identity: ssh/id, known_hosts: ssh/known_hosts, capture: eth0}")
    )
    options = host_options(profile)
    assert options.ssh_identity == tmp_path / "ssh" / "id"
    assert options.known_hosts == tmp_path / "ssh" / "known_hosts"
    assert options.capture_interface == "eth0" and options.command_timeout == 20.0
