"""The per-run ssh configuration: nothing from ~/.ssh, strict host keys, no DNS, bounded."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.host.facts import HostOptions
from conformance.host.sshconfig import run_ssh_config


def _effective(config: Path, address: str) -> dict[str, str]:
    """What OpenSSH would use for `address` with only this config (`ssh -G` connects nowhere)."""
    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), f"ops@{address}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    settings: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key, value)
    return settings


@pytest.mark.skipif(shutil.which("ssh") is None, reason="openssh-client not installed")
def test_run_config_trusts_only_the_given_keys(tmp_path: Path) -> None:
    known = tmp_path / "site_known_hosts"
    known.write_text("")
    identity = tmp_path / "audit_key"
    identity.write_text("")
    config = run_ssh_config(tmp_path, HostOptions(ssh_identity=identity, known_hosts=known))
    settings = _effective(config, "192.0.2.10")
    assert settings["stricthostkeychecking"] == "true"
    assert settings["userknownhostsfile"] == str(known)
    assert settings["globalknownhostsfile"] == "/dev/null"
    assert settings["identityfile"] == str(identity) and settings["identitiesonly"] == "yes"
    assert settings["batchmode"] == "yes" and settings["canonicalizehostname"] == "false"
    assert settings["verifyhostkeydns"] == "false" and settings["controlmaster"] == "false"
    assert settings["connecttimeout"] == "10" and settings["serveraliveinterval"] == "5"


def test_without_known_hosts_nothing_is_trusted(tmp_path: Path) -> None:
    config = run_ssh_config(tmp_path, HostOptions())
    text = config.read_text()
    assert f"UserKnownHostsFile {tmp_path / 'known_hosts'}" in text
    assert (tmp_path / "known_hosts").read_text() == ""
    assert "StrictHostKeyChecking yes" in text and "IdentityFile" not in text
