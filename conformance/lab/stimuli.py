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
import ipaddress
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from conformance.errors import ProfileError
from conformance.lab import topology as topo

ACTIONS: Final = ("licence-refresh", "restart", "telemetry-beat", "directory-sync")
"""Admin actions of the reference target (POST /actions/<name>)."""
HTTP_METHODS: Final = ("GET", "POST", "PUT", "DELETE", "HEAD")
STIMULUS_TIMEOUT: Final = 10.0  # one stimulus; longer ones would outlive a typical window
MAX_OUTPUT: Final = 2000  # characters of a stimulus's output kept in the log
LAB_NETWORKS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (topo.ONPREM_V4, topo.ONPREM_V6, *topo.INTERNET_V4, topo.INTERNET_V6)
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


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


def parse_duration(value: object, source: Path, key: str) -> float:
    """`5s`, `500ms`, `1m` or a number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ProfileError(source, key, "expected a duration such as 5s")
    if isinstance(value, str):
        found = _DURATION.fullmatch(value.strip())
        if found is None:
            raise ProfileError(source, key, f"{value!r} is not a duration such as 5s")
        seconds = float(found[1]) * _UNITS[found[2]]
    else:
        seconds = float(value)
    if seconds < 0:
        raise ProfileError(source, key, "a negative time")
    return seconds


def _lab_url(url: str, source: Path, key: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProfileError(source, key, f"{url!r} is not an http(s) URL")
    try:
        host = ipaddress.ip_address(parts.hostname)
    except ValueError:
        raise ProfileError(
            source, key, f"{url!r}: write a lab address, not a name (the harness resolves nothing)"
        ) from None
    if not any(host in net for net in LAB_NETWORKS if net.version == host.version):
        raise ProfileError(source, key, f"{host} is not a lab address")
    return url


def parse_stimuli(value: object, source: Path) -> tuple[Stimulus, ...]:
    """The profile's `stimuli` section, sorted by time; ProfileError naming the key path."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProfileError(source, "stimuli", "expected a list of {at: 5s, action: ...}")
    out: list[Stimulus] = []
    for index, item in enumerate(value):
        key = f"stimuli[{index}]"
        if not isinstance(item, dict) or "at" not in item:
            raise ProfileError(
                source, key, "expected a mapping with at and one of action/http/shell"
            )
        kinds = [k for k in ("action", "http", "shell") if k in item]
        extra = set(item) - {"at", "action", "http", "shell"}
        if len(kinds) != 1 or extra:
            raise ProfileError(source, key, "give `at` and exactly one of action, http, shell")
        at = parse_duration(item["at"], source, f"{key}.at")
        kind = kinds[0]
        if kind == "action":
            action = item["action"]
            if action not in ACTIONS:
                raise ProfileError(
                    source, f"{key}.action", f"{action!r} is not one of {', '.join(ACTIONS)}"
                )
            url = f"http://{topo.TARGET_V4}:{topo.ADMIN_PORT}/actions/{action}"
            out.append(Stimulus(at, "action", "POST", url))
        elif kind == "http":
            spec = item["http"]
            if not isinstance(spec, dict) or "url" not in spec:
                raise ProfileError(source, f"{key}.http", "expected {method: GET, url: ...}")
            method = str(spec.get("method", "GET")).upper()
            if method not in HTTP_METHODS:
                raise ProfileError(source, f"{key}.http.method", f"{method!r} is not supported")
            url = _lab_url(str(spec["url"]), source, f"{key}.http.url")
            out.append(Stimulus(at, "http", method, url))
        else:
            command = item["shell"]
            if not isinstance(command, str) or not command.strip():
                raise ProfileError(source, f"{key}.shell", "expected a command line")
            out.append(Stimulus(at, "shell", command=command))
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
