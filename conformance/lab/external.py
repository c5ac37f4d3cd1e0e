"""A target the lab does not start itself: a container placed in the lab (docs/containers.md).

The lab adopts the target's network namespace (`ip netns attach`) instead of creating one,
builds the same links, firewall and capture around it, writes the target's configuration
where the target waits for it, and watches it through `watcher` (a process that ends when
the target ends).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Protocol


class ExternalTarget(Protocol):
    """What the lab needs from a target it does not start."""

    def netns_pid(self) -> int:
        """A process inside the target's network namespace."""

    def start(self, config_file: Path, workdir: Path) -> subprocess.Popen[bytes]:
        """Let the target read `config_file` and run; return a watcher process."""

    def describe(self) -> str:
        """One line for the report (image, container id)."""
