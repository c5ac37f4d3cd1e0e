"""Load and validate a deployment profile (placeholder until the loader lands)."""

from __future__ import annotations

from pathlib import Path

from conformance.profile_model import Profile


def load_profile(path: Path | str) -> Profile:
    """Parse the YAML profile at `path` into a frozen Profile, or raise ProfileError."""
    raise NotImplementedError
