"""Evidence from a container image run as the lab's target (docs/containers.md).

The container is created with no network of its own (`network_mode: none`), joined to the
lab's on-prem segment by adopting its network namespace, given the lab's configuration
through a bind-mounted work directory (the lab CA, the resolvers, the proxy, the offline
licence, the mode, telemetry and fault switches), captured on its link like the reference
target, and removed on every exit path. Everything the run creates carries the labels
`ucx-conformance.run` and `ucx-conformance.owner`; a later run removes what a killed one left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from conformance.errors import ConformanceError
from conformance.evidence.interface import CONTAINER_LOG, Collected
from conformance.evidence.lab import LabSource
from conformance.profile_model import Profile
from conformance.progress import Progress
from conformance.scratch import scratch_dir

RUN_LABEL = "ucx-conformance.run"
OWNER_LABEL = "ucx-conformance.owner"
CONFIG_ENV = "UCX_TARGET_CONFIG"


def docker_client() -> Any:
    """The engine from the usual environment (DOCKER_HOST, else the default socket)."""
    import docker

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        raise ConformanceError(
            f"no Docker engine answers at {where} ({type(exc).__name__}): start one "
            "(`systemctl start docker`, or `scripts/docker-up` in a checkout) or set DOCKER_HOST"
        ) from exc
    return client


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(client: Any) -> list[str]:
    """Remove containers a previous run left behind (its owner process is gone)."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": RUN_LABEL}):
        owner = container.labels.get(OWNER_LABEL, "")
        if owner.isdigit() and _alive(int(owner)) and int(owner) != os.getpid():
            continue  # another live run's
        container.remove(force=True)
        removed.append(container.name)
    return removed


def _env_pairs(env: Sequence[str]) -> dict[str, str]:
    pairs = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConformanceError(f"--env {item!r}: expected KEY=VALUE")
        pairs[key] = value
    return pairs


def _volumes(volumes: Sequence[str]) -> dict[str, dict[str, str]]:
    mounts = {}
    for item in volumes:
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0].startswith("/") or not parts[1].startswith("/"):
            raise ConformanceError(f"--volume {item!r}: expected /HOST/PATH:/CONTAINER/PATH[:ro]")
        mode = parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            raise ConformanceError(f"--volume {item!r}: mode must be ro or rw")
        mounts[parts[0]] = {"bind": parts[1], "mode": mode}
    return mounts


class ContainerTarget:
    """One container of the image under test, as the lab's ExternalTarget."""

    def __init__(
        self,
        client: Any,
        image: str,
        workdir: Path,
        env: dict[str, str],
        volumes: dict[str, dict[str, str]],
        run_id: str,
    ) -> None:
        self.client = client
        self.image = image
        self.workdir = workdir
        self.container: Any = None
        self._env = env
        self._volumes = volumes
        self._run_id = run_id

    def create(self) -> None:
        try:
            self.client.images.get(self.image)
        except Exception as exc:
            raise ConformanceError(
                f"--image {self.image}: not in the engine ({type(exc).__name__}); "
                "build or load it first (`ucx-conformance lab build-image`, or docker load)"
            ) from exc
        config = self.workdir / "target.json"
        self.container = self.client.containers.run(
            self.image,
            detach=True,
            network_mode="none",
            cap_add=["NET_ADMIN"],  # the target installs its own host firewall (nftables)
            # Docker turns IPv6 off in a container without a network; the lab has IPv6.
            sysctls={
                "net.ipv6.conf.all.disable_ipv6": "0",
                "net.ipv6.conf.default.disable_ipv6": "0",
            },
            environment={**self._env, CONFIG_ENV: str(config)},
            # The work directory at the same path inside: every path in the config holds.
            volumes={str(self.workdir): {"bind": str(self.workdir), "mode": "rw"}, **self._volumes},
            labels={RUN_LABEL: self._run_id, OWNER_LABEL: str(os.getpid())},
            name=f"ucx-conformance-{self._run_id}",
        )
        self.container.reload()

    def netns_pid(self) -> int:
        pid = int(self.container.attrs["State"]["Pid"])
        if pid <= 0:
            logs = self.container.logs(tail=20).decode(errors="replace")
            raise ConformanceError(f"--image {self.image}: the container is not running: {logs}")
        return pid

    def start(self, config_file: Path, workdir: Path) -> subprocess.Popen[bytes]:
        log = (workdir / "container.log").open("ab")
        try:
            # Ends when the container ends: the lab watches the target through it.
            return subprocess.Popen(
                ["docker", "logs", "--follow", "--timestamps", self.container.id],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        finally:
            log.close()

    def describe(self) -> str:
        return f"container {self.container.short_id} of image {self.image}"

    def remove(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):  # already gone
                self.container.remove(force=True, v=True)
            self.container = None


class DockerSource:
    """Runs an image as the lab's target, captures it, removes it."""

    name = "docker"

    def __init__(
        self, image: str, env: Sequence[str], volumes: Sequence[str], faults: Sequence[str] = ()
    ) -> None:
        self.image = image
        self.env = _env_pairs(env)
        self.volumes = _volumes(volumes)
        self.faults = tuple(faults)
        self._workdir: Path | None = None
        self._target: ContainerTarget | None = None
        self._lab: LabSource | None = None

    def collect(self, profile: Profile, progress: Progress) -> Collected:
        import secrets

        client = docker_client()
        stale = remove_stale(client)
        self._workdir = scratch_dir("image")
        self._target = ContainerTarget(
            client, self.image, self._workdir, self.env, self.volumes, secrets.token_hex(4)
        )
        try:
            self._target.create()
            self._lab = LabSource(self.faults)
            self._lab.external = self._target
            self._lab.workdir = self._workdir
            collected = self._lab.collect(profile, progress)
        finally:
            self._target.remove()
        log = self._workdir / "container.log"
        notes = (*collected.notes, *(f"removed a stale container {n}" for n in stale))
        files = collected.files
        logs = dict(collected.logs)
        if log.exists():
            files = (*files, (log, "container/container.log"))
            logs[CONTAINER_LOG] = log
        return replace(
            collected,
            source="docker",
            files=files,
            logs=logs,
            notes=(f"image {self.image}", *notes),
        )

    def close(self) -> None:
        if self._target is not None:
            self._target.remove()
        if self._lab is not None:
            self._lab.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
