"""Content-level evidence from the customer's own material: TLS keys and HAR files.

Used by the capture source (`run --pcap ... --tls-keylog FILE --content-log FILE.har`) and by
the lab when its reference target writes its key log (`lab: {tls_keylog: true}`):

1. `check_inputs` (before anything is judged): every key log is read and checked
   (conformance.decode.keylog; a bad line is exit 3 naming file:line), every capture's
   Decryption Secrets Blocks are found and checked, every HAR is read (content.har).
2. `judged_captures`: a capture that carries DSBs is judged, and copied into the report,
   without them (byte for byte otherwise) unless the user keeps secrets (`--keep-secrets`).
3. `collect` (after the captures are observed): tshark decrypts each capture
   (content.tshark_content), every message is redacted (content.redact) and written to
   `content/tls-decrypted.jsonl`; HAR entries matched to the capture go to
   `content/har-messages.jsonl`. Each file starts with what it was made from (key logs and
   HARs by SHA-256, never their content) and ends with one coverage line per TLS connection
   of the target (content.coverage). With `keep_secrets`, the keys of the sessions in each
   capture are kept inside a copy of it as a DSB (`secrets/capture-N-keys.pcapng`, opened
   decrypted by Wireshark) and the HARs as they were (`secrets/har-N.har`); otherwise the
   report says only that keys were used and their SHA-256.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

from conformance.content.decryption_coverage import (
    FlowIndex,
    TlsFlow,
    coverage_record,
    target_tls_flows,
)
from conformance.content.har import entry_records, match
from conformance.content.own_inputs import HAR_EVIDENCE, TLS_EVIDENCE, Inputs, OwnEvidence
from conformance.content.personal import Scanner
from conformance.content.prefilter import Subset, subset, wanted_flows
from conformance.content.redact import redact_record, site_scanner
from conformance.content.tshark_content import (
    Extraction,
    Session,
    extract,
    tls_ports,
    tshark_version,
)
from conformance.decode.keylog import decrypts_client_data, merge
from conformance.errors import CaptureError
from conformance.evidence.interface import HAR_CONTENT, TLS_DECRYPTED
from conformance.observe.records import Observations, PayloadKind
from conformance.profile_model import Profile

SECRETS_DIR: Final = "secrets"


class _Writer:
    """A JSON-lines evidence file; messages are redacted on their way in."""

    def __init__(self, path: Path, scanner: Scanner) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.handle: IO[str] = path.open("w", encoding="utf-8")
        self.scanner = scanner
        self.redacted = 0
        self.messages = 0

    def line(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def message(self, record: dict[str, Any]) -> None:
        clean, count = redact_record(record, self.scanner)
        self.redacted += count
        self.messages += 1
        self.line(clean)

    def close(self) -> None:
        self.handle.close()


def _why(session: Session | None, labels: dict[str, frozenset[str]]) -> tuple[bool, str]:
    """Whether a session is covered by decryption, and why (not)."""
    if session is None:
        return False, "tshark found no TLS session in it"
    if session.unread is not None:
        return False, f"not all it sent could be read: {session.unread}"
    keyed = session.client_random is not None and decrypts_client_data(
        labels.get(session.client_random)
    )
    if session.decrypted:
        if session.messages == 0 and session.opaque:
            return False, (
                f"decrypted, but tshark dissected no application protocol in its"
                f" {session.opaque} application-data packets: their content is not judged"
            )
        if session.messages:
            return True, f"decrypted: {session.messages} messages"
        if session.application:  # e.g. HTTP/2 SETTINGS and PING only: no request
            return True, (
                f"decrypted: no request in its {session.application} application packets"
                " (connection control only)"
            )
        return True, "decrypted: the target sent no application data"
    if session.client_hello is None:
        return False, "its ClientHello is not in the capture (began before it): no client random"
    if not session.opaque:
        return True, "the handshake did not complete: the target sent no application data"
    if not keyed:
        return False, "no key for its client random"
    return False, "a key was given but tshark did not decrypt it (wrong secret?)"


def _keys_header(inputs: Inputs, names: Sequence[str], engine: str) -> dict[str, Any]:
    return {
        "event": "keys",
        "engine": engine,
        "key_logs": [
            {
                "file": Path(k.source).name,
                "sha256": k.sha256,
                "lines": k.lines,
                "tls12_sessions": k.tls12_sessions,
                "tls13_sessions": k.tls13_sessions,
            }
            for k in inputs.keylogs
        ],
        "secrets_blocks": [
            {"capture": names[i], "blocks": len(s.blocks), "sha256": [k.sha256 for k in s.keylogs]}
            for i, s in enumerate(inputs.secrets)
            if s.blocks and i < len(names)
        ],
        "kept": inputs.request.keep_secrets,
    }


def _tshark_keylog(inputs: Inputs, workdir: Path) -> Path | None:
    """One key log file for tshark (`-o tls.keylog_file:` takes one): the given file, or the
    given files joined in a private directory (DSBs tshark reads from the capture itself)."""
    if not inputs.keylogs:
        return None
    if len(inputs.keylogs) == 1:
        return Path(inputs.keylogs[0].source)
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    joined = workdir / "keys-joined.txt"
    with joined.open("wb") as out:
        os.chmod(joined, 0o600)
        for log in inputs.keylogs:
            with Path(log.source).open("rb") as src:
                shutil.copyfileobj(src, out)
            out.write(b"\n")
    return joined


def _keep_keys(
    inputs: Inputs, capture: Path, sessions: Sequence[Session], workdir: Path, index: int
) -> Path | None:
    """A copy of `capture` with a DSB holding the key log lines of its sessions only."""
    randoms = {s.client_random for s in sessions if s.client_random}
    if not inputs.keylogs or not randoms:
        return None
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = workdir / f"keys-{index}.txt"
    with keys.open("wb") as out:
        os.chmod(keys, 0o600)
        for log in inputs.keylogs:
            with Path(log.source).open("rb") as src:
                for line in src:
                    fields = line.split()
                    if len(fields) == 3 and fields[1].decode(errors="replace").lower() in randoms:
                        out.write(line.rstrip(b"\r\n") + b"\n")
    dest = workdir / f"capture-{index}-keys.pcapng"
    done = subprocess.run(
        ["editcap", "-F", "pcapng", "--inject-secrets", f"tls,{keys}", str(capture), str(dest)],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    keys.unlink(missing_ok=True)
    if done.returncode != 0:
        raise CaptureError(capture, f"editcap could not add the keys: {done.stderr.strip()[:300]}")
    return dest


def collect(
    inputs: Inputs,
    captures: Sequence[Path],
    names: Sequence[str],
    observations: Observations,
    profile: Profile,
    workdir: Path,
    known_names: Sequence[str] = (),
) -> OwnEvidence:
    """Decrypt and match, write the content evidence files into `workdir` (see the module
    docstring). `captures` are the files as given (with their DSBs), `names` their evidence
    names, `observations` what was observed from them."""
    out = OwnEvidence()
    flows = target_tls_flows(observations, profile)
    scanner = site_scanner(profile, known_names)
    if inputs.decrypts:
        _decrypt(inputs, captures, names, observations, profile, workdir, flows, scanner, out)
    if inputs.hars:
        _har(inputs, names, workdir, flows, scanner, out)
    return out


def _coverage_lines(
    flows: Sequence[TlsFlow],
    extractions: Sequence[Extraction],
    names: Sequence[str],
    labels: dict[str, frozenset[str]],
    writer: _Writer,
) -> tuple[int, list[str]]:
    """One coverage line per TLS connection of the target: decrypted (or nothing to decrypt),
    or why not. Returns how many were covered and the others' descriptions. A capture whose
    tshark output was not all read (its extraction's problems) covers none of its
    connections: a skipped packet may have been any of their messages (fail closed)."""
    by_flow: dict[int, Session] = {}
    for extraction in extractions:
        for session in extraction.sessions:
            if session.flow_id is not None:
                by_flow.setdefault(session.flow_id, session)
    covered = 0
    missing: list[str] = []
    for flow in flows:
        found = by_flow.get(flow.flow_id)
        ok, why = (
            (False, "QUIC sessions are not decrypted by this harness")
            if flow.transport == "udp"
            else _why(found, labels)
        )
        unread = extractions[flow.capture].problems
        if ok and unread:
            ok, why = False, f"tshark's output of its capture was not all read: {unread[0]}"
        record = coverage_record(flow, names[flow.capture], ok, why)
        if found is not None:
            record["client_random"] = found.client_random
            record["keys"] = bool(
                found.client_random and decrypts_client_data(labels.get(found.client_random))
            )
            record["version"] = found.version
        writer.line(record)
        covered += ok
        if not ok:
            missing.append(f"{flow.describe()}: {why}")
    return covered, missing


def _decrypt_notes(
    engine: str, flows: int, covered: int, missing: Sequence[str], writer: _Writer
) -> list[str]:
    """What the report says about the decryption: coverage, what was not, what was redacted."""
    notes: list[str] = []
    summary = (
        f"TLS decryption ({_engine_name(engine)} with the target's keys):"
        f" {flows} TLS connections of the target, {covered} decrypted or without"
        f" application data, {writer.messages} messages in {TLS_EVIDENCE}"
    )
    if missing:
        shown = "; ".join(missing[:5]) + (
            f"; and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        summary += f"; not decrypted: {shown}"
    notes.append(summary)
    if writer.redacted:
        notes.append(
            f"{TLS_EVIDENCE}: {writer.redacted} personal values and credentials replaced by"
            " [redacted:...] placeholders (judged again, they still count as personal data)"
        )
    return notes


def _decrypt(
    inputs: Inputs,
    captures: Sequence[Path],
    names: Sequence[str],
    observations: Observations,
    profile: Profile,
    workdir: Path,
    flows: Sequence[TlsFlow],
    scanner: Scanner,
    out: OwnEvidence,
) -> None:
    engine = tshark_version()
    private = workdir / "private"
    keylog = _tshark_keylog(inputs, private)
    labels = merge([*inputs.keylogs, *(k for s in inputs.secrets for k in s.keylogs)])
    writer = _Writer(workdir / TLS_EVIDENCE, scanner)
    targets = frozenset(str(a) for a in profile.target.addresses)
    index = FlowIndex(observations)
    extractions: list[Extraction] = []
    try:
        writer.line(_keys_header(inputs, names, engine))
        for number, capture in enumerate(captures):
            cut = _cut(capture, number, observations, profile, flows, inputs, private, out)
            extraction = extract(
                capture,
                number,
                names[number],
                keylog,
                targets,
                index,
                writer.message,
                tls_ports(flows),
                cut,
            )
            extractions.append(extraction)
            if cut is not None:
                cut.path.unlink(missing_ok=True)
        covered, missing = _coverage_lines(flows, extractions, names, labels, writer)
    finally:
        writer.close()
    out.files.append((writer.path, TLS_EVIDENCE))
    out.logs[TLS_DECRYPTED] = writer.path
    out.notes.extend(_key_notes(inputs, names))
    out.notes.extend(_decrypt_notes(engine, len(flows), covered, missing, writer))
    for number, extraction in enumerate(extractions):
        for problem in (*extraction.problems, *extraction.notes):
            out.notes.append(f"{names[number]}: {problem}")
    if inputs.request.keep_secrets:
        for number, (capture, extraction) in enumerate(zip(captures, extractions, strict=True)):
            kept = _keep_keys(inputs, capture, extraction.sessions, private, number)
            if kept is not None:
                out.files.append((kept, f"{SECRETS_DIR}/capture-{number}-keys.pcapng"))


def _cut(
    capture: Path,
    number: int,
    observations: Observations,
    profile: Profile,
    flows: Sequence[TlsFlow],
    inputs: Inputs,
    private: Path,
    out: OwnEvidence,
) -> Subset | None:
    """The capture cut down to the target's TLS and plaintext HTTP connections (tshark
    dissects every frame it is given); None: tshark reads the whole capture."""
    ids = {f.flow_id for f in flows if f.capture == number and f.transport == "tcp"}
    ids.update(
        f.flow_id
        for f in observations.flows
        if f.capture == number
        and f.transport == "tcp"
        and profile.is_target(f.initiator)
        and f.payload_out in (PayloadKind.HTTP, PayloadKind.HTTP2_PREFACE)
    )
    if not ids:
        return None
    private.mkdir(mode=0o700, parents=True, exist_ok=True)
    secrets = next((s for s in inputs.secrets if s.path == capture), None)
    cut = subset(
        capture,
        wanted_flows(observations, number, ids),
        private / f"subset-{number}.pcapng",
        secrets if secrets is not None and secrets.blocks else None,
    )
    if cut is None:
        out.notes.append(
            f"capture {number}: some TLS connections of the target could not be cut out of it"
            " (tunnelled or fragmented): tshark read the whole capture"
        )
    return cut


def _engine_name(version_line: str) -> str:
    """ "tshark 4.0.17" from tshark's --version line."""
    import re

    found = re.search(r"\d+\.\d+\.\d+", version_line)
    return f"tshark {found.group()}" if found else "tshark"


def _key_notes(inputs: Inputs, names: Sequence[str]) -> list[str]:
    notes = []
    kept = inputs.request.keep_secrets
    for log in inputs.keylogs:
        where = (
            f"kept inside {SECRETS_DIR}/capture-N-keys.pcapng (Decryption Secrets Block),"
            " only the lines of the sessions in each capture"
            if kept
            else "not copied into this report (--keep-secrets keeps them inside a pcapng"
            " Decryption Secrets Block)"
        )
        notes.append(f"TLS key log {Path(log.source).name} used: {log.describe()}; {where}")
    for number, secrets in enumerate(inputs.secrets):
        if not secrets.blocks or number >= len(names):
            continue
        digests = ", ".join(k.sha256 for k in secrets.keylogs) or "no TLS key log"
        if kept:
            notes.append(
                f"{names[number]}: its {len(secrets.blocks)} Decryption Secrets Blocks"
                f" (SHA-256 {digests}) are kept in the report's copy (--keep-secrets)"
            )
        else:
            notes.append(
                f"{names[number]}: its {len(secrets.blocks)} Decryption Secrets Blocks"
                f" (SHA-256 {digests}) were used to decrypt and removed from the report's copy;"
                " every other byte is as given"
            )
        if secrets.other_types:
            notes.append(
                f"{names[number]}: secrets of other kinds not used:"
                f" {', '.join(secrets.other_types)}"
            )
        if secrets.problem:
            notes.append(f"{names[number]}: looking for secrets stopped early: {secrets.problem}")
    return notes


def _har(
    inputs: Inputs,
    names: Sequence[str],
    workdir: Path,
    flows: Sequence[TlsFlow],
    scanner: Scanner,
    out: OwnEvidence,
) -> None:
    writer = _Writer(workdir / HAR_EVIDENCE, scanner)
    explained: dict[int, str] = {}
    try:
        for number, har in enumerate(inputs.hars):
            matches = match(har, flows)
            writer.line(
                {
                    "event": "har",
                    "file": har.path.name,
                    "sha256": har.sha256,
                    "version": har.version,
                    "creator": har.creator,
                    "entries": len(har.entries),
                    "matched": len(matches),
                    "kept": inputs.request.keep_secrets,
                }
            )
            for record in entry_records(har, har.path.name, matches, names):
                writer.message(record)
            for index, flow in matches.items():
                explained.setdefault(flow.flow_id, f"{har.path.name} entry {index}")
            unmatched = len(har.entries) - len(matches)
            note = (
                f"HAR {har.path.name} ({har.creator}, HAR {har.version}, SHA-256 {har.sha256}):"
                f" {len(har.entries)} entries, {len(matches)} match a TLS connection of the"
                " target in the capture"
            )
            if unmatched:
                note += (
                    f"; {unmatched} match none (another client's, or outside the window):"
                    " not judged"
                )
            out.notes.append(note)
            if inputs.request.keep_secrets:
                out.files.append((har.path, f"{SECRETS_DIR}/har-{number}.har"))
        missing = []
        for flow in flows:
            source = explained.get(flow.flow_id)
            why = (
                f"explained by {source}"
                if source
                else "no HAR entry explains it (host, port, time)"
            )
            writer.line(coverage_record(flow, names[flow.capture], source is not None, why))
            if source is None:
                missing.append(flow.describe())
    finally:
        writer.close()
    out.files.append((writer.path, HAR_EVIDENCE))
    out.logs[HAR_CONTENT] = writer.path
    summary = (
        f"HAR content: {len(flows) - len(missing)} of {len(flows)} TLS connections of the target"
        f" explained, {writer.messages} messages in {HAR_EVIDENCE}"
    )
    if missing:
        summary += f"; not explained: {'; '.join(missing[:5])}"
        if len(missing) > 5:
            summary += f"; and {len(missing) - 5} more"
    out.notes.append(summary)
    if not inputs.request.keep_secrets:
        out.notes.append(
            "HAR files are not copied into the report (they hold cookies and authorization"
            " headers; --keep-secrets keeps them); their SHA-256 is above"
        )
    if writer.redacted:
        out.notes.append(
            f"{HAR_EVIDENCE}: {writer.redacted} personal values and credentials replaced by"
            " [redacted:...] placeholders"
        )
