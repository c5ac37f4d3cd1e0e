"""The Dask distributed executor (`--executor dask://HOST:PORT`, extra `ucx-conformance[scale]`).

Files are read by the workers of an existing scheduler, so a site whose captures outgrow one
machine uses the engine it may already run. Each worker must read the files at the paths
given (shared storage) and have the same harness installed. Dask is imported here only, so
the harness needs it only when this executor is chosen.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from conformance.errors import ConformanceError
from conformance.observe.worker import ObservedFile, Pending, observe_file

# How long to wait for the scheduler before saying it cannot be reached.
CONNECT_TIMEOUT_S = 10.0


def _distributed() -> Any:
    """dask.distributed, untyped (it ships no type information mypy --strict accepts)."""
    return importlib.import_module("distributed")


def observe_on_worker(path: str) -> ObservedFile:
    """`observe_file` on a Dask worker, naming the worker by its address."""
    found = observe_file(path)
    address = str(_distributed().get_worker().address)
    return ObservedFile(found.observations, address, found.problem)


class DaskExecutor:
    """Submits each file to a Dask distributed scheduler."""

    in_process = False

    def __init__(self, address: str) -> None:
        try:
            client = _distributed().Client
        except ImportError as exc:
            raise ConformanceError(
                "--executor dask://: Dask is not installed (pip install 'ucx-conformance[scale]')"
            ) from exc
        if not address:
            raise ConformanceError(
                "--executor dask://HOST:PORT: the scheduler's address is missing"
            )
        target = address if "://" in address else f"tcp://{address}"
        try:
            self._client: Any = client(target, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except OSError as exc:
            raise ConformanceError(
                f"--executor dask://{address}: cannot reach the scheduler: {exc}"
            ) from exc
        self.label = f"dask {target}"

    def submit(self, path: Path) -> Pending:
        # pure=False: the same path read again (a watch restarted) is read again.
        future: Pending = self._client.submit(observe_on_worker, str(path), pure=False)
        return future

    def close(self) -> None:
        self._client.close()
