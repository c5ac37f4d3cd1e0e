"""Build the reference UCX target image without any registry (docs/containers.md).

A minimal Debian root filesystem made by `debootstrap` (cached as a tarball by the hash of
its recipe), plus the reference target's files, imported with `docker import` and tagged by
the hash of both: a second build with nothing changed finds the tag and does nothing.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Final

from conformance.resources import lab_dir

REPOSITORY: Final = "ucx-conformance/reference-target"
SUITE: Final = "bookworm"
PACKAGES: Final = ("python3", "python3-h2", "nftables", "iproute2")
CACHE: Final = Path("/var/cache/ucx-conformance")
LAB_FIXTURES: Final = lab_dir()
TARGET_FILES: Final = ("target/ucx_target.py", "target/faults.json", "labproto.py")
IN_IMAGE: Final = "/opt/ucx"  # where the target's files sit inside the image
ENTRYPOINT: Final = (
    "#!/bin/sh\n"
    "# Wait for the lab's configuration, then run the reference target (docs/containers.md).\n"
    'config="${UCX_TARGET_CONFIG:?set by the harness}"\n'
    'while [ ! -f "$config" ]; do sleep 0.1; done\n'
    f'exec python3 {IN_IMAGE}/target/ucx_target.py "$config"\n'
)


def _recipe() -> str:
    return f"debootstrap --variant=minbase --include={','.join(PACKAGES)} {SUITE}"


def base_tarball(mirror: str = "http://deb.debian.org/debian") -> Path:
    """The debootstrap root filesystem as a tarball, made once per recipe."""
    digest = hashlib.sha256(_recipe().encode()).hexdigest()[:16]
    tarball = CACHE / f"rootfs-{SUITE}-{digest}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ucx-rootfs-", dir=CACHE) as work:
        root = Path(work) / "root"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(root),
                mirror,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)  # whole or absent: an interrupted build leaves no tarball
    return tarball


def image_tag(base: Path) -> str:
    """The image tag: a hash of the base recipe and every file of the target layer."""
    digest = hashlib.sha256(base.name.encode())
    for name in TARGET_FILES:
        digest.update(name.encode())
        digest.update((LAB_FIXTURES / name).read_bytes())
    digest.update(ENTRYPOINT.encode())
    return f"{REPOSITORY}:{digest.hexdigest()[:16]}"


def _exists(tag: str) -> bool:
    done = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return done.returncode == 0


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    archive.addfile(info, io.BytesIO(data))


def build_reference_image(mirror: str = "http://deb.debian.org/debian") -> str:
    """Build (or find) the reference target image; return its tag."""
    base = base_tarball(mirror)
    tag = image_tag(base)
    if _exists(tag):
        return tag
    with tempfile.NamedTemporaryFile(suffix=".tar", dir=CACHE) as layered:
        with tarfile.open(base) as source, tarfile.open(layered.name, "w") as out:
            for member in source:
                out.addfile(member, source.extractfile(member) if member.isfile() else None)
            for name in TARGET_FILES:
                _add_bytes(out, f".{IN_IMAGE}/{name}", (LAB_FIXTURES / name).read_bytes())
            _add_bytes(out, f".{IN_IMAGE}/entrypoint", ENTRYPOINT.encode(), 0o755)
        subprocess.run(
            [
                "docker",
                "import",
                "--change",
                f'ENTRYPOINT ["{IN_IMAGE}/entrypoint"]',
                "--change",
                "LABEL org.opencontainers.image.title=ucx-conformance-reference-target",
                layered.name,
                tag,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    subprocess.run(["docker", "tag", tag, f"{REPOSITORY}:latest"], check=True)
    return tag


if __name__ == "__main__":
    print(build_reference_image())
