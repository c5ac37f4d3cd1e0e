"""Evaluate many display filters over one capture with tshark, in few passes.

Running `tshark -Y FILTER` once per filter costs about 0.4 s each; instead every filter is
made a colouring rule (`@name@filter@[fg][bg]`, a personal `colorfilters` file in a
temporary WIRESHARK_CONFIG_DIR) and `tshark --color -T fields -e frame.coloring_rule.name`
names, per frame, the first rule that matched: tshark's own display-filter engine, one
pass. Filters whose packet sets overlap go into separate passes so that "first match"
never hides one. `frames_matching` runs the plain `-Y` form, for cross-checks.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

WAIT = 120.0  # seconds for one tshark pass over a test capture


def frames_matching(capture: Path, display_filter: str, *options: str) -> list[int]:
    """`tshark -r CAPTURE -Y FILTER`: the frame numbers it shows."""
    command = ["tshark", "-n", *options, "-r", str(capture), "-Y", display_filter]
    out = subprocess.run(
        [*command, "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    return [int(line) for line in out.stdout.split()]


def matches(
    capture: Path, filters: Mapping[str, str], packets: Mapping[str, Iterable[int]]
) -> dict[str, list[int]]:
    """Per name, the frames its filter shows; `packets[name]` is what it should show (to keep
    filters of overlapping packets in separate passes)."""
    passes: list[tuple[dict[str, str], set[int]]] = []
    for name, text in filters.items():
        wanted = set(packets[name])
        for rules, taken in passes:
            if not taken & wanted:
                rules[name] = text
                taken.update(wanted)
                break
        else:
            passes.append(({name: text}, wanted))
    found: dict[str, list[int]] = {name: [] for name in filters}
    for rules, _ in passes:
        for name, frames in _one_pass(capture, rules).items():
            found[name] += frames
    return {name: sorted(frames) for name, frames in found.items()}


def _one_pass(capture: Path, rules: Mapping[str, str]) -> dict[str, list[int]]:
    with tempfile.TemporaryDirectory() as config:
        Path(config, "colorfilters").write_text(
            "".join(f"@{name}@{text}@[0,0,0][65535,65535,65535]\n" for name, text in rules.items())
        )
        command = ["tshark", "-n", "--color", "-r", str(capture), "-T", "fields"]
        out = subprocess.run(
            [*command, "-e", "frame.number", "-e", "frame.coloring_rule.name"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
            env=dict(os.environ, WIRESHARK_CONFIG_DIR=config),
        )
    found: dict[str, list[int]] = {name: [] for name in rules}
    for line in out.stdout.splitlines():
        number, _, name = line.partition("\t")
        if name in found:
            found[name].append(int(number))
    return found
