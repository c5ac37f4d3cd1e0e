"""The customer's TLS secrets for a capture run, checked before anything is judged.

Key logs (`--tls-keylog`, NSS format) are read and checked now (a bad line is exit 3 naming
file:line, conformance.decode.keylog), and every capture's pcapng Decryption Secrets Blocks
are found. A capture that carries DSBs is judged, and copied into the report, without them
unless the user keeps secrets (`--keep-secrets`): keys never enter a report by accident. The
decryption itself is the observe step's (conformance.content.own_evidence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.decode.keylog import CaptureSecrets, KeyLog, copy_without_secrets, read_keylog
from conformance.decode.keylog import pcapng_secrets as _pcapng_secrets
from conformance.evidence.interface import SecretInputs


@dataclass(frozen=True, slots=True)
class CheckedSecrets:
    """The key logs as read and each capture's DSBs (in capture order)."""

    request: SecretInputs
    keylogs: tuple[KeyLog, ...] = ()
    secrets: tuple[CaptureSecrets, ...] = ()

    @property
    def decrypts(self) -> bool:
        """Whether there is anything to decrypt with."""
        return bool(self.keylogs or any(s.keylogs for s in self.secrets))


def check_secrets(request: SecretInputs, captures: Sequence[Path]) -> CheckedSecrets:
    """Read and check every key log and every capture's DSBs (KeyLogError: exit 3)."""
    keylogs = tuple(read_keylog(p) for p in request.keylogs)
    # Every block of every capture when the user deals in secrets; otherwise large captures
    # only up to their first packet (decode.keylog.pcapng_secrets: the walk costs time).
    secrets = tuple(_pcapng_secrets(p, whole=request.given) for p in captures)
    return CheckedSecrets(request, keylogs, secrets)


def judged_captures(checked: CheckedSecrets, captures: Sequence[Path], workdir: Path) -> list[Path]:
    """The captures to judge and copy into the report: a capture with DSBs is replaced by a
    copy without them, unless secrets are kept."""
    out = []
    by_path = {s.path: s for s in checked.secrets}
    for index, path in enumerate(captures):
        found = by_path.get(path)
        if found is None or not found.blocks or checked.request.keep_secrets:
            out.append(path)
            continue
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        dest = workdir / f"{index}-{path.stem}-no-secrets{path.suffix or '.pcapng'}"
        out.append(copy_without_secrets(path, dest, found))
    return out
