"""Stimuli from the profile's `stimuli:` list, run during the observation window.

    stimuli:
      - {at: 3s, action: licence-refresh}          # POST /actions/<name> on the target's admin API
      - {at: 4s, http: {method: GET, url: "http://192.0.2.10:8080/status"}}
      - {at: 5s, shell: "ip -br addr"}             # run inside the target's namespace

`action` and `http` requests come from the admin workstation (192.0.2.200), as an operator's
would. URLs must name a lab address: the harness connects nowhere the profile does not name
(controls.md decision 7). Run as `python -m conformance.lab.stimuli http METHOD URL SOURCE`
inside a namespace for the HTTP client side.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from conformance.lab import topology as topo
from conformance.profile_model import STIMULUS_ACTIONS, StimulusSpec

ACTIONS: Final = STIMULUS_ACTIONS
"""Admin actions of the reference target (POST /actions/<name>)."""
STIMULUS_TIMEOUT: Final = 10.0  # one stimulus; longer ones would outlive a typical window
MAX_OUTPUT: Final = 2000  # characters of a stimulus's output kept in the log


@dataclass(frozen=True, slots=True)
class Stimulus:
    """One thing to do at `at` seconds into the window."""

    at: float
    kind: str  # "action" | "http" | "shell"
    method: str = ""
    url: str = ""
    command: str = ""

    def describe(self) -> str:
        if self.kind == "shell":
            return f"shell: {self.command}"
        return f"{self.method} {self.url}"


def lab_stimuli(specs: Sequence[StimulusSpec]) -> tuple[Stimulus, ...]:
    """The profile's `stimuli` (checked when it loaded) as the lab runs them, sorted by time.

    An action is a POST to the reference target's admin API on its on-prem address.
    """
    out: list[Stimulus] = []
    for spec in specs:
        if spec.kind == "action":
            url = f"http://{topo.TARGET_V4}:{topo.ADMIN_PORT}/actions/{spec.action}"
            out.append(Stimulus(spec.at, "action", "POST", url))
        elif spec.kind == "http":
            out.append(Stimulus(spec.at, "http", spec.method, spec.url))
        else:
            out.append(Stimulus(spec.at, "shell", command=spec.command))
    return tuple(sorted(out, key=lambda s: s.at))


class StimulusRunner:
    """Runs stimuli at their times on a background thread; each result is one JSON line."""

    def __init__(
        self,
        stimuli: Sequence[Stimulus],
        log: Path,
        http_argv: Callable[[Stimulus], list[str]],
        shell_argv: Callable[[Stimulus], list[str]],
    ) -> None:
        self.stimuli = stimuli
        self.log = log
        self.http_argv, self.shell_argv = http_argv, shell_argv
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lab-stimuli", daemon=True)

    def start(self) -> None:
        self.log.touch()
        self.started = time.monotonic()
        self.thread.start()

    def join(self) -> None:
        self.stop.set()
        self.thread.join(STIMULUS_TIMEOUT + 1)

    def _run(self) -> None:
        for stimulus in self.stimuli:
            delay = stimulus.at - (time.monotonic() - self.started)
            if delay > 0 and self.stop.wait(delay):
                return
            argv = (
                self.shell_argv(stimulus) if stimulus.kind == "shell" else self.http_argv(stimulus)
            )
            self._record(stimulus, argv)

    def _record(self, stimulus: Stimulus, argv: list[str]) -> None:
        began = time.monotonic() - self.started
        began_epoch = time.time()
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=STIMULUS_TIMEOUT, check=False
            )
            result: dict[str, object] = {
                "exit": done.returncode,
                "output": (done.stdout + done.stderr)[-MAX_OUTPUT:],
            }
        except (OSError, subprocess.TimeoutExpired) as exc:
            result = {"exit": None, "error": str(exc)}
        line = {
            "at": stimulus.at,
            "ran_at": round(began, 3),
            "t": round(began_epoch, 3),  # epoch, to compare with the content logs' times
            "stimulus": stimulus.describe(),
            **result,
        }
        with self.log.open("a") as handle:
            handle.write(json.dumps(line) + "\n")


def _http(method: str, url: str, source: str) -> int:
    """The admin workstation's HTTP client (runs inside the on-prem namespace)."""
    parts = urlsplit(url)
    conn_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_type(
        parts.hostname or "", parts.port, timeout=STIMULUS_TIMEOUT, source_address=(source, 0)
    )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn.request(method, path, body=b"" if method == "POST" else None)
    response = conn.getresponse()
    body = response.read(MAX_OUTPUT).decode("utf-8", "replace")
    print(json.dumps({"status": response.status, "body": body}))
    return 0 if response.status < 400 else 1


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "http":
        sys.exit("usage: python -m conformance.lab.stimuli http METHOD URL SOURCE")
    sys.exit(_http(sys.argv[2], sys.argv[3], sys.argv[4]))
