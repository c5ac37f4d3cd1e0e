"""Network namespaces, links and processes the lab owns, and how they are always removed.

Every namespace, and every process started in one, is written to a state file under
STATE_DIR *before* it is created, so a lab killed with SIGKILL leaves a record the next
start uses to clean up (`clean_stale`). Processes are recorded with their start time
(/proc/PID/stat field 22) so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from conformance.errors import LabError
from conformance.lab.topology import PREFIX

STATE_DIR: Final = Path("/run/ucx-conformance-lab")
NETNS_ETC: Final = Path("/etc/netns")
"""`ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf: each lab
namespace gets one naming a lab resolver, so no library in the lab ever asks the host's."""
COMMAND_TIMEOUT: Final = 10.0  # one `ip`/`nft` call; they take milliseconds when healthy
TERM_GRACE: Final = 2.0  # seconds a process gets between SIGTERM and SIGKILL
REQUIRED_TOOLS: Final = {
    "ip": "iproute2",
    "nft": "nftables",
    "dumpcap": "tshark (dumpcap)",
    "dnsmasq": "dnsmasq",
    "squid": "squid",
    "slapd": "slapd",
    "slapadd": "slapd",
}


def check_host() -> None:
    """Raise LabError unless we are root and every tool the lab runs is installed."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates network namespaces); run as root")
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        raise LabError(f"the lab needs these Debian packages: apt-get install {' '.join(missing)}")


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run a short command, return its stdout; raise LabError naming it when it fails."""
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"lab command failed: {' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise LabError(
            f"lab command failed ({done.returncode}): {' '.join(argv)}: {done.stderr.strip()}"
        )
    return done.stdout


def ip_batch(namespace: str | None, commands: Sequence[str]) -> None:
    """Run `ip` commands in one process (`ip -batch`), inside `namespace` if given."""
    argv = ["ip", *(["-n", namespace] if namespace else []), "-batch", "-"]
    run(argv, stdin="\n".join(commands) + "\n")


def in_netns(namespace: str, argv: Sequence[str]) -> list[str]:
    """`argv` wrapped to run inside `namespace`."""
    return ["ip", "netns", "exec", namespace, *argv]


def write_sysctl(namespace: str, settings: Mapping[str, str]) -> None:
    """Set per-namespace sysctls (net.* only) from inside the namespace."""
    script = "; ".join(
        f"echo {value} > /proc/sys/{key.replace('.', '/')}" for key, value in settings.items()
    )
    run(in_netns(namespace, ["sh", "-ec", script]))


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (comm) may hold spaces and parentheses: split after its closing ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19])  # field 22 overall


def alive(pid: int, started: int | None) -> bool:
    """Whether `pid` is still the process that was recorded (same start time)."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # Each lab process is its own session leader (start_new_session), so its group
    # holds it and whatever it forked, and nothing else.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def stop_process(pid: int, started: int | None, grace: float = TERM_GRACE) -> None:
    """SIGTERM the recorded process (and its group), SIGKILL after `grace` seconds."""
    if not alive(pid, started):
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not alive(pid, started):
            return
        time.sleep(0.02)
    _signal_group(pid, signal.SIGKILL)
    for _ in range(100):
        _reap(pid)
        if not alive(pid, started) or _is_zombie(pid):
            return
        time.sleep(0.01)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def namespace_pids(namespace: str) -> list[int]:
    """Processes living in `namespace` (all of them were started there by the lab)."""
    out = run(["ip", "netns", "pids", namespace], check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def existing_namespaces() -> list[str]:
    """Names of the lab's namespaces that exist now (any run)."""
    out = run(["ip", "-j", "netns", "list"], check=False).strip()
    if not out:
        return []
    try:
        entries = json.loads(out)
    except ValueError:
        return []
    return [str(e["name"]) for e in entries if str(e.get("name", "")).startswith(PREFIX)]


def delete_namespace(namespace: str) -> None:
    """Kill whatever still runs in `namespace`, then delete it (its veths go with it)."""
    for pid in namespace_pids(namespace):
        if pid != os.getpid():
            _signal_group(pid, signal.SIGKILL)
            _reap(pid)
    run(["ip", "netns", "delete", namespace], check=False)
    shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)


@dataclass
class RecordedProcess:
    """A process the lab started: enough to find it again after a crash."""

    pid: int
    started: int | None
    name: str


@dataclass
class LabState:
    """What one lab run owns, mirrored to STATE_DIR/<run_id>.json on every change."""

    run_id: str
    owner_pid: int = field(default_factory=os.getpid)
    owner_started: int | None = None
    namespaces: list[str] = field(default_factory=list)
    processes: list[RecordedProcess] = field(default_factory=list)
    # The Popen objects of this run's children (not saved): polled after teardown so the
    # objects know their processes ended.
    children: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    # Namespaces to adopt from a running process instead of creating (a container target):
    # name -> pid. Not saved: teardown deletes the name, the process's own namespace stays.
    attach: dict[str, int] = field(default_factory=dict, repr=False)

    @classmethod
    def new(cls) -> LabState:
        state = cls(run_id=secrets.token_hex(3))
        state.owner_started = start_time(state.owner_pid)
        state.save()
        return state

    @property
    def path(self) -> Path:
        return STATE_DIR / f"{self.run_id}.json"

    def save(self) -> None:
        if not STATE_DIR.is_dir():
            STATE_DIR.mkdir(parents=True, exist_ok=True)
            STATE_DIR.chmod(0o711)  # traversable, not listable: see run_dir
        data = {
            "run_id": self.run_id,
            "owner_pid": self.owner_pid,
            "owner_started": self.owner_started,
            "namespaces": self.namespaces,
            "processes": [vars(p) for p in self.processes],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    @classmethod
    def load(cls, path: Path) -> LabState | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                run_id=str(data["run_id"]),
                owner_pid=int(data["owner_pid"]),
                owner_started=data.get("owner_started"),
                namespaces=[str(n) for n in data["namespaces"]],
                processes=[RecordedProcess(**p) for p in data["processes"]],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def add_namespace(self, namespace: str, resolver: str | None) -> None:
        """Record, then create, a namespace with loopback up and its own resolv.conf."""
        self.namespaces.append(namespace)
        self.save()
        etc = NETNS_ETC / namespace
        etc.mkdir(parents=True, exist_ok=True)
        # No resolver: glibc then asks 127.0.0.1, inside the namespace, where nothing answers.
        (etc / "resolv.conf").write_text(f"nameserver {resolver}\n" if resolver else "# none\n")
        if namespace in self.attach:
            run(["ip", "netns", "attach", namespace, str(self.attach[namespace])])
        else:
            run(["ip", "netns", "add", namespace])
        ip_batch(namespace, ["link set dev lo up"])

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        stdout: IO[bytes] | int | None = subprocess.DEVNULL,
        stderr: IO[bytes] | int | None = subprocess.DEVNULL,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process in its own session and record it."""
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=dict(env) if env is not None else None,
                start_new_session=True,  # our signals reach it only when we mean them to
            )
        except OSError as exc:
            raise LabError(f"cannot start {name}: {exc}") from exc
        self.processes.append(RecordedProcess(proc.pid, start_time(proc.pid), name))
        self.children.append(proc)
        self.save()
        return proc

    def teardown(self, on_stopped: Callable[[], None] | None = None) -> list[str]:
        """Stop every process, delete every namespace, remove the state file.

        `on_stopped` runs once the processes are gone and before their run directory is
        removed (to collect logs they flushed on exit). Returns notes about anything that
        needed force. Safe to call twice.
        """
        notes = stop_all(self.processes)
        for child in self.children:
            # Reaped already (returncode 0 then), or reap it now; a process stop_all just
            # SIGKILLed may not be dead yet, and a bare poll() would leave it unreaped.
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=1.0)
        self.children.clear()
        if on_stopped is not None:
            try:
                on_stopped()
            except OSError as exc:
                notes.append(f"collecting logs after stop failed: {exc}")
        for namespace in reversed(self.namespaces):
            delete_namespace(namespace)
        left = [n for n in self.namespaces if n in existing_namespaces()]
        if left:
            notes.append(f"namespaces not deleted: {', '.join(left)}")
        else:
            with contextlib.suppress(OSError):
                self.path.unlink()
        for leftover in Path("/dev/shm").glob(f"{shm_prefix(self.run_id)}-*"):
            leftover.unlink(missing_ok=True)  # squid's segments, if it was killed
        shutil.rmtree(STATE_DIR / self.run_id, ignore_errors=True)
        self.processes.clear()
        self.namespaces.clear()
        return notes


def shm_prefix(run_id: str) -> str:
    """Squid's service name for a run (`squid -n`): its shared-memory segments start with it."""
    return f"ucxl{run_id}"


def run_dir(run_id: str) -> Path:
    """A per-run directory daemons that drop privileges can reach (squid runs as `proxy`)."""
    path = STATE_DIR / run_id
    path.mkdir(mode=0o755, exist_ok=True)
    return path


def stop_all(processes: Sequence[RecordedProcess], grace: float = TERM_GRACE) -> list[str]:
    """SIGTERM every live recorded process at once, SIGKILL what is left after `grace`."""
    live = [p for p in processes if alive(p.pid, p.started)]
    for proc in live:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        for proc in live:
            _reap(proc.pid)
        live = [p for p in live if alive(p.pid, p.started) and not _is_zombie(p.pid)]
        time.sleep(0.02)
    notes = []
    for proc in live:
        notes.append(f"{proc.name} (pid {proc.pid}) ignored SIGTERM; killed")
        stop_process(proc.pid, proc.started, grace=0.0)
    return notes


def clean_stale() -> list[str]:
    """Remove what earlier, dead lab runs left behind; leaves live runs alone.

    A run is dead when its owner process is gone (or its pid was recycled). Namespaces
    under PREFIX that no state file claims are leftovers of a run killed between
    writing its state and creating them, and are removed too.
    """
    notes: list[str] = []
    claimed: set[str] = set()
    if STATE_DIR.is_dir():
        for path in sorted(STATE_DIR.glob("*.json")):
            state = LabState.load(path)
            if state is None:
                notes.append(f"removed unreadable lab state {path.name}")
                path.unlink(missing_ok=True)
                continue
            if alive(state.owner_pid, state.owner_started):
                claimed.update(state.namespaces)
                continue
            notes.append(
                f"cleaned stale lab {state.run_id} (owner pid {state.owner_pid} gone):"
                f" {len(state.processes)} processes, {len(state.namespaces)} namespaces"
            )
            state.teardown()
            path.unlink(missing_ok=True)
        for tmp in STATE_DIR.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
    for namespace in existing_namespaces():
        if namespace not in claimed:
            notes.append(f"removed orphan namespace {namespace}")
            delete_namespace(namespace)
    if NETNS_ETC.is_dir():
        for etc in NETNS_ETC.glob(f"{PREFIX}*"):
            if etc.name not in claimed:
                shutil.rmtree(etc, ignore_errors=True)
    return notes
