"""The profile's `host:` section (docs/profile.md, docs/hosts.md)."""

from __future__ import annotations

from pathlib import Path

from conformance.errors import ProfileError
from conformance.host.collect import HostOptions
from conformance.profile_model import Profile

_KEYS = (
    "ssh_config",
    "identity",
    "known_hosts",
    "settings",
    "command_timeout",
    "sample_interval",
    "sudo",
    "capture",
)


def _path(value: object, profile: Profile, key: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ProfileError(profile.source, key, "expected a file path")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = profile.source.parent / path  # relative to the profile, like every path in it
    if not path.is_file():
        raise ProfileError(profile.source, key, f"{path}: no such file")
    return path


def _seconds(value: object, profile: Profile, key: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 600:
        raise ProfileError(profile.source, key, "expected seconds between 0 and 600")
    return float(value)


def host_options(profile: Profile) -> HostOptions:
    """Parse `host:`; ProfileError naming file, key path and problem."""
    section = profile.extra.get("host")
    if section is None:
        return HostOptions()
    if not isinstance(section, dict):
        raise ProfileError(profile.source, "host", "expected a mapping")
    for key in section:
        if key not in _KEYS:
            raise ProfileError(
                profile.source, f"host.{key}", f"unknown key; allowed: {', '.join(_KEYS)}"
            )
    settings = section.get("settings")
    if settings is not None and (not isinstance(settings, str) or not settings.startswith("/")):
        raise ProfileError(profile.source, "host.settings", "expected an absolute path on the host")
    sudo = section.get("sudo", False)
    if not isinstance(sudo, bool):
        raise ProfileError(profile.source, "host.sudo", "expected true or false")
    capture = section.get("capture")
    if capture is not None and (
        not isinstance(capture, str) or not capture or any(c in capture for c in " ;'\"$`")
    ):
        raise ProfileError(profile.source, "host.capture", "expected an interface name")
    return HostOptions(
        capture_interface=capture,
        ssh_config=_path(section.get("ssh_config"), profile, "host.ssh_config"),
        ssh_identity=_path(section.get("identity"), profile, "host.identity"),
        known_hosts=_path(section.get("known_hosts"), profile, "host.known_hosts"),
        settings_path=settings,
        command_timeout=_seconds(
            section.get("command_timeout"), profile, "host.command_timeout", 20.0
        ),
        sample_interval=_seconds(
            section.get("sample_interval"), profile, "host.sample_interval", 2.0
        ),
        sudo=sudo,
    )
