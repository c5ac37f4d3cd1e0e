"""The profile's `host:` section (docs/profile.md, docs/hosts.md) as the collector's options."""

from __future__ import annotations

from conformance.host.facts import HostOptions
from conformance.profile_model import Profile


def host_options(profile: Profile) -> HostOptions:
    """The collector's options from `host:` (checked, files found, when the profile loaded)."""
    host = profile.host
    return HostOptions(
        capture_interface=host.capture,
        ssh_config=host.ssh_config,
        ssh_identity=host.identity,
        known_hosts=host.known_hosts,
        settings_path=host.settings,
        command_timeout=host.command_timeout,
        sample_interval=host.sample_interval,
        sudo=host.sudo,
    )
