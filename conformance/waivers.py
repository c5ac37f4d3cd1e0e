"""Waivers: approved, expiring exceptions for known findings (interface.md "After the run").

A waiver file is YAML, a list of `{control, match, justification, approved_by, expires}`:

    - control: AG-EGRESS
      match: {destination: "198.51.100.123:123/udp"}   # or {name: "*.example.org"}; absent: all
      justification: NTP to the ISP until the on-prem server is commissioned (CHG-1234)
      approved_by: Jane Roe, CISO
      expires: 2026-12-31       # a date (valid through that day, UTC) or a datetime

`load_waivers` parses it strictly (errors name file, key path and problem, exit 3);
`apply_waivers` is applied between judging and writing, never inside a judge, and is pure:
it returns new results and marks, and never changes a finding's data.

Rules (fail closed):
- a waived violation keeps everything it said, and is marked with the waiver;
- a control whose violations are all waived passes only when it would otherwise pass: its
  judge recorded no evidence gaps (`incomplete`) and stated that nothing else is unproven
  (`unproven`, an empty list). Otherwise it is `inconclusive`, never `pass`;
- an expired waiver waives nothing and adds a `warning` finding naming it; so does a waiver
  that matches no finding (a stale waiver is worth knowing);
- a waiver never changes an `inconclusive`, `error` or `not-applicable` verdict.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Final, NoReturn

import yaml

from conformance.errors import WaiverError
from conformance.judge.result import ControlResult, Finding, Severity
from conformance.names import is_valid_pattern, matches
from conformance.observe.records import Flow, Observations
from conformance.profile_model import IPAddress
from conformance.user_files import read_user_file
from conformance.verdict import Verdict

MAX_WAIVER_FILE_BYTES: Final = 1 << 20  # a waiver file is a page of YAML; 1 MiB is a mistake
MAX_WAIVERS: Final = 1000  # more exceptions than that is no longer an exception list
MAX_JUSTIFICATION: Final = 2000  # a paragraph, shown in the report beside the finding
MAX_APPROVER: Final = 200  # a name and a role, on one line
# The copy of the waiver file inside the report, under evidence/ (signed with the rest).
EVIDENCE_NAME: Final = "waivers.yaml"

FIELDS: Final = ("control", "match", "justification", "approved_by", "expires")
REQUIRED: Final = ("control", "justification", "approved_by", "expires")
MATCH_KEYS: Final = ("destination", "name")
TRANSPORTS: Final = ("tcp", "udp")
# Facts a judge records: evidence gaps (conclude) and what else it could not prove.
INCOMPLETE_FACT: Final = "incomplete"
UNPROVEN_FACT: Final = "unproven"

_V6_PORT = re.compile(r"\[(?P<address>[^\]]+)\]:(?P<port>\d{1,5})/(?P<proto>[A-Za-z]+)")
_V4_PORT = re.compile(r"(?P<address>[0-9.]+):(?P<port>\d{1,5})/(?P<proto>[A-Za-z]+)")


@dataclass(frozen=True, slots=True)
class Destination:
    """`ADDR[:PORT/PROTO]`: the address a flow went to, optionally its port and transport."""

    address: IPAddress
    port: int | None = None
    transport: str | None = None

    def matches(self, flow: Flow) -> bool:
        """Whether `flow` went to this destination (its responder)."""
        if flow.responder != self.address:
            return False
        if self.port is None:
            return True
        return flow.transport == self.transport and flow.responder_port == self.port

    def __str__(self) -> str:
        if self.port is None:
            return str(self.address)
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}/{self.transport}"


@dataclass(frozen=True, slots=True)
class Waiver:
    """One approved exception: which control, which findings, who approved it, until when."""

    number: int  # 1-based position in the file ("waiver #2")
    line: int  # line of the entry in the file (and in its copy evidence/waivers.yaml)
    control: str
    destination: Destination | None
    name: str | None  # a name pattern (decision 4), as written
    justification: str
    approved_by: str
    expires: datetime  # the first instant at which it no longer applies (UTC)
    expires_text: str  # as written, for people

    @property
    def match_text(self) -> str:
        """What it covers, in words: "destination 198.51.100.7:443/tcp", "every finding"."""
        parts = []
        if self.destination is not None:
            parts.append(f"destination {self.destination}")
        if self.name is not None:
            parts.append(f"name {self.name}")
        return " and ".join(parts) or "every finding"

    @property
    def label(self) -> str:
        """How findings and notes name it: "waiver #2 (AG-EGRESS, destination ...)"."""
        return f"waiver #{self.number} ({self.control}, {self.match_text})"

    def expired(self, now: datetime) -> bool:
        """Whether the waiver no longer applies at `now` (timezone-aware)."""
        return now >= self.expires

    def covers(self, finding: Finding, flow: Flow | None, names: Collection[str]) -> bool:
        """Whether this waiver's `match` selects `finding` (the flow and names it concerns)."""
        if self.destination is not None and (flow is None or not self.destination.matches(flow)):
            return False
        return self.name is None or any(matches(self.name, n) for n in names)


@dataclass(frozen=True, slots=True)
class WaiverFile:
    """A parsed waiver file and the exact bytes it was parsed from (copied into the report)."""

    path: Path
    data: bytes
    waivers: tuple[Waiver, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# --- loading ---------------------------------------------------------------------------------


_MERGE: Final = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (two parsers must not read two meanings),
    two `<<` in one mapping included, and a key two merged mappings both bring (YAML keeps
    one of them by a rule few people know); a key written in the mapping itself overrides a
    merged one, in plain sight."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[str] = set()
        merged: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key_node.value)
            if key_node.tag == _MERGE and isinstance(value_node, yaml.SequenceNode):
                for source in value_node.value:
                    names = _keys_of(source)
                    if twice := sorted(names & merged):
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"key {twice[0]!r} merged (<<) from two mappings: write it once",
                            key_node.start_mark,
                        )
                    merged |= names
        return super().construct_mapping(node, deep)


def _keys_of(node: yaml.Node) -> set[str]:
    if not isinstance(node, yaml.MappingNode):
        return set()
    return {str(k.value) for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _timestamp_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


# Timestamps stay text and are parsed by `_expires`: PyYAML would raise a bare ValueError
# for "2026-13-01" and read a zone-less time in a way the error message cannot name.
_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_text)


@dataclass(frozen=True, slots=True)
class _At:
    file: str
    key: str = ""

    def child(self, name: str) -> _At:
        return _At(self.file, f"{self.key}.{name}" if self.key else name)

    def item(self, index: int) -> _At:
        return _At(self.file, f"{self.key}[{index}]")

    def fail(self, problem: str) -> NoReturn:
        raise WaiverError(self.file, self.key, problem)


def _parse_yaml(data: bytes, at: _At) -> tuple[object, list[int]]:
    """The single YAML document and the line of each top-level list item."""
    loader = _StrictLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            at.fail("empty: a waiver file is a list of waivers")
        lines = (
            [item.start_mark.line + 1 for item in node.value]
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else ""
        problem = " ".join(f"not valid YAML: {exc.problem or exc.context or 'syntax'}".split())
        raise WaiverError(at.file, where, problem) from None
    except yaml.YAMLError as exc:
        at.fail(f"not valid YAML: {' '.join(str(exc).split())}")
    except RecursionError:
        at.fail("not valid YAML: nested too deeply")
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        # a constructor's own complaint (an integer too large, `!!bool maybe`, ...)
        at.fail(f"not valid YAML: {type(exc).__name__}: {' '.join(str(exc).split())[:80]}")
    finally:
        loader.dispose()


def _text(value: object, at: _At, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        at.fail("must be a non-empty string")
    text = " ".join(value.split())
    if len(text) > limit:
        at.fail(f"longer than {limit} characters")
    return text


def _control(value: object, at: _At, known: Sequence[str]) -> str:
    if not isinstance(value, str):
        at.fail("must be a control id such as AG-EGRESS")
    if value not in known:
        close = difflib.get_close_matches(value, known, n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        at.fail(f"unknown control {value!r}{hint}")
    return value


def _address(text: str, at: _At) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        at.fail(f"{text!r} is not an IP address (write ADDR or ADDR:PORT/PROTO)")


def _destination(value: object, at: _At) -> Destination:
    if not isinstance(value, str) or not value.strip():
        at.fail("must be ADDR or ADDR:PORT/PROTO, e.g. 198.51.100.7:443/tcp")
    text = value.strip()
    found = _V6_PORT.fullmatch(text) or _V4_PORT.fullmatch(text)
    if found is None:
        if "/" in text:
            at.fail(f"{text!r}: write ADDR or ADDR:PORT/PROTO ([ADDR]:PORT/PROTO for IPv6)")
        return Destination(_address(text.strip("[]"), at))
    address = _address(found["address"], at)
    if address.version == 6 and text[0] != "[":
        at.fail(f"{text!r}: an IPv6 destination with a port is written [ADDR]:PORT/PROTO")
    port = int(found["port"])
    if not 1 <= port <= 65535:
        at.fail(f"port {port} is not between 1 and 65535")
    proto = found["proto"].lower()
    if proto not in TRANSPORTS:
        at.fail(f"{found['proto']!r} is not tcp or udp")
    return Destination(address, port, proto)


def _match(value: object, at: _At) -> tuple[Destination | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict) or not value:
        at.fail("must be a mapping with destination and/or name (omit it to cover every finding)")
    for key in value:
        if key not in MATCH_KEYS:
            at.fail(f"unknown key {key!r} (allowed: {', '.join(MATCH_KEYS)})")
    destination = None
    if "destination" in value:
        destination = _destination(value["destination"], at.child("destination"))
    name = None
    if "name" in value:
        raw = value["name"]
        if not isinstance(raw, str):
            at.child("name").fail("must be a name pattern such as *.example.org")
        problem = is_valid_pattern(raw)
        if problem:
            at.child("name").fail(f"{raw!r}: {problem}")
        name = raw
    return destination, name


def _expires(value: object, at: _At) -> tuple[datetime, str]:
    """The first instant the waiver no longer applies: a date lasts through its day (UTC)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            timed = "T" in text or " " in text
            value = datetime.fromisoformat(text) if timed else date.fromisoformat(text)
        except ValueError:
            at.fail(f"{text!r} is not an ISO date (2026-12-31) or datetime")
    try:
        if isinstance(value, datetime):
            # YAML 1.1: a timestamp without a zone is UTC.
            moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            return moment.astimezone(UTC), moment.isoformat()
        if isinstance(value, date):
            end = datetime.combine(value + timedelta(days=1), time(), tzinfo=UTC)
            return end, value.isoformat()
    except OverflowError:  # 9999-12-31, or a zone that moves it past year 9999 or before 1
        at.fail(f"{str(value)!r} is out of range; give a date from 0001-01-02 to 9999-12-30")
    at.fail("must be an ISO date (2026-12-31) or datetime (2026-12-31T18:00:00Z)")


def _waiver(value: object, at: _At, number: int, line: int, known: Sequence[str]) -> Waiver:
    if not isinstance(value, dict):
        at.fail(f"must be a mapping with {', '.join(FIELDS)}")
    for key in value:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            at.fail(f"unknown key {key!r}{hint}")
    for key in REQUIRED:
        if key not in value:
            at.fail(f"missing {key!r} (a waiver needs {', '.join(REQUIRED)})")
    destination, name = _match(value.get("match"), at.child("match"))
    expires, expires_text = _expires(value["expires"], at.child("expires"))
    return Waiver(
        number=number,
        line=line,
        control=_control(value["control"], at.child("control"), known),
        destination=destination,
        name=name,
        justification=_text(value["justification"], at.child("justification"), MAX_JUSTIFICATION),
        approved_by=_text(value["approved_by"], at.child("approved_by"), MAX_APPROVER),
        expires=expires,
        expires_text=expires_text,
    )


def parse_waivers(data: bytes, source: Path | str, known_controls: Sequence[str]) -> WaiverFile:
    """Parse waiver-file bytes; `known_controls` are the catalog ids a waiver may name."""
    at = _At(str(source))
    if len(data) > MAX_WAIVER_FILE_BYTES:
        at.fail(f"larger than {MAX_WAIVER_FILE_BYTES} bytes; a waiver file is a page of YAML")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at.fail(f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}")
    document, lines = _parse_yaml(data, at)
    if not isinstance(document, list):
        at.fail("must be a list of waivers (- control: ..., match: ..., ...)")
    if len(document) > MAX_WAIVERS:
        at.fail(f"{len(document)} waivers; at most {MAX_WAIVERS}")
    waivers = tuple(
        _waiver(item, at.item(i), i + 1, lines[i] if i < len(lines) else 0, known_controls)
        for i, item in enumerate(document)
    )
    return WaiverFile(path=Path(source), data=data, waivers=waivers)


def load_waivers(path: Path, known_controls: Sequence[str]) -> WaiverFile:
    """Read and parse the waiver file at `path` once; its bytes are what the report signs."""
    at = _At(str(path))
    data = read_user_file(path, MAX_WAIVER_FILE_BYTES, "a waiver file", at.fail)
    return parse_waivers(data, path, known_controls)


# --- applying --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaiverUse:
    """What one waiver did in this run: `applied`, `expired`, `unmatched` or `no-control`."""

    waiver: Waiver
    state: str
    findings: int  # findings it waived (applied) or would have matched (expired)


@dataclass(frozen=True, slots=True)
class WaiverOutcome:
    """Results after waivers, the findings each waiver covers, and what each waiver did.

    `marks[(control_id, i)]` is the waiver covering finding i of that control's result in
    `results` (the judge's findings keep their positions; warnings about waivers follow).
    `before[control_id]` is the verdict the judge gave, for controls waivers changed.
    """

    file: WaiverFile
    results: tuple[ControlResult, ...]
    marks: Mapping[tuple[str, int], Waiver]
    before: Mapping[str, Verdict]
    uses: tuple[WaiverUse, ...]
    notes: tuple[str, ...] = ()
    _counts: dict[str, int] = field(default_factory=dict, repr=False)

    def waived(self, control_id: str) -> int:
        """How many findings of `control_id` are waived."""
        if not self._counts:
            for control, _index in self.marks:
                self._counts[control] = self._counts.get(control, 0) + 1
        return self._counts.get(control_id, 0)


class _FlowNames:
    """The flow and names a finding concerns, from the observations (decision 8 mapping)."""

    def __init__(self, observations: Observations | None) -> None:
        from conformance.judge.common import NameIndex

        self._obs = observations
        self._index = NameIndex(observations) if observations is not None else None

    def flow(self, finding: Finding) -> Flow | None:
        if self._obs is None or finding.flow_id is None:
            return None
        position = finding.flow_id - 1
        flows = self._obs.flows
        if 0 <= position < len(flows) and flows[position].flow_id == finding.flow_id:
            return flows[position]
        return next((f for f in flows if f.flow_id == finding.flow_id), None)

    def names(self, finding: Finding, flow: Flow | None) -> tuple[str, ...]:
        # A finding about one name (a DNS query) concerns that name only, not every name
        # its flow happens to carry.
        single = finding.facts.get("name")
        if single:
            return (single,)
        names = [n.strip() for n in finding.facts.get("names", "").split(",") if n.strip()]
        if flow is not None and self._index is not None:
            names += self._index.names(flow)
        return tuple(dict.fromkeys(names))


def _waivable(finding: Finding) -> bool:
    return finding.severity in (Severity.VIOLATION, Severity.WARNING)


def _warning(waiver: Waiver, summary: str) -> Finding:
    return Finding(
        Severity.WARNING,
        summary,
        evidence_file=EVIDENCE_NAME,
        evidence_line=waiver.line or None,
        facts={"waiver": f"#{waiver.number}", "approved_by": waiver.approved_by},
    )


def _numbers(waivers: Iterable[Waiver]) -> str:
    return ", ".join(f"#{w.number}" for w in sorted(set(waivers), key=lambda w: w.number))


def _all_waived(result: ControlResult, used: Iterable[Waiver]) -> tuple[Verdict, str]:
    """The verdict of a failed control whose every violation is waived (fail closed)."""
    head = f"every violation is waived ({EVIDENCE_NAME} {_numbers(used)})"
    incomplete = result.facts.get(INCOMPLETE_FACT)
    if incomplete:
        gaps = "; ".join(map(str, incomplete)) if isinstance(incomplete, list) else incomplete
        return Verdict.INCONCLUSIVE, f"{head}, but the evidence is incomplete: {gaps}"
    unproven = result.facts.get(UNPROVEN_FACT)
    if not isinstance(unproven, list):
        return Verdict.INCONCLUSIVE, (
            f"{head}; the judge did not state that nothing else is unproven, so the control"
            f" is not proven (judge's verdict: fail: {result.reason})"
        )
    if unproven:
        return Verdict.INCONCLUSIVE, f"{head}; still unproven: {'; '.join(map(str, unproven))}"
    return Verdict.PASS, f"{head}; nothing else found or missing"


def _apply_one(
    result: ControlResult,
    waivers: Sequence[Waiver],
    now: datetime,
    lookup: _FlowNames,
    marks: dict[tuple[str, int], Waiver],
    uses: list[WaiverUse],
) -> tuple[ControlResult, Verdict | None]:
    active = [w for w in waivers if not w.expired(now)]
    expired = [w for w in waivers if w.expired(now)]
    matched: dict[int, int] = {w.number: 0 for w in waivers}
    waived_violations: list[Waiver] = []
    unwaived_violations = 0
    for index, finding in enumerate(result.findings):
        if not _waivable(finding):
            continue
        flow = lookup.flow(finding)
        names = lookup.names(finding, flow)
        covering = [w for w in waivers if w.covers(finding, flow, names)]
        for waiver in covering:
            matched[waiver.number] += 1
        chosen = next((w for w in covering if w in active), None)
        if chosen is not None:
            marks[(result.control_id, index)] = chosen
            if finding.severity is Severity.VIOLATION:
                waived_violations.append(chosen)
        elif finding.severity is Severity.VIOLATION:
            unwaived_violations += 1
    extra: list[Finding] = []
    for waiver in expired:
        would = matched[waiver.number]
        uses.append(WaiverUse(waiver, "expired", would))
        extra.append(
            _warning(
                waiver,
                f"{waiver.label} expired {waiver.expires_text} (approved by {waiver.approved_by})"
                f": it waives nothing; it would cover {would} finding(s). Renew or remove it",
            )
        )
    for waiver in active:
        count = sum(1 for (cid, _i), w in marks.items() if cid == result.control_id and w is waiver)
        if matched[waiver.number] == 0:
            uses.append(WaiverUse(waiver, "unmatched", 0))
            extra.append(
                _warning(
                    waiver,
                    f"{waiver.label} matches no finding of {result.control_id}: it is stale;"
                    " remove it or correct its match",
                )
            )
        else:
            uses.append(WaiverUse(waiver, "applied", count))
    verdict, reason = result.verdict, result.reason
    if result.verdict is Verdict.FAIL and waived_violations:
        if unwaived_violations == 0:
            verdict, reason = _all_waived(result, waived_violations)
        else:
            total = unwaived_violations + len(waived_violations)
            reason = (
                f"{reason}; {len(waived_violations)} of {total} violations waived"
                f" ({EVIDENCE_NAME} {_numbers(waived_violations)}), the rest still fail"
            )
    if verdict is result.verdict and reason == result.reason and not extra:
        return result, None
    changed = replace(result, verdict=verdict, reason=reason, findings=(*result.findings, *extra))
    return changed, (result.verdict if verdict is not result.verdict else None)


def apply_waivers(
    results: Sequence[ControlResult],
    waivers: WaiverFile,
    now: datetime,
    observations: Observations | None,
) -> WaiverOutcome:
    """Apply `waivers` to judged `results` at time `now` (aware); see the module docstring.

    `observations` give the flow and names each finding concerns (for `match`); without
    them only waivers with no `match` can cover a finding.
    """
    if now.tzinfo is None:
        raise ValueError("apply_waivers: `now` must be timezone-aware")
    by_control: dict[str, list[Waiver]] = {}
    for waiver in waivers.waivers:
        by_control.setdefault(waiver.control, []).append(waiver)
    lookup = _FlowNames(observations)
    marks: dict[tuple[str, int], Waiver] = {}
    uses: list[WaiverUse] = []
    before: dict[str, Verdict] = {}
    out: list[ControlResult] = []
    for result in results:
        mine = by_control.pop(result.control_id, [])
        if not mine:
            out.append(result)
            continue
        changed, previous = _apply_one(result, mine, now, lookup, marks, uses)
        if previous is not None:
            before[result.control_id] = previous
        out.append(changed)
    notes = []
    for control_id, rest in by_control.items():
        for waiver in rest:
            uses.append(WaiverUse(waiver, "no-control", 0))
            notes.append(
                f"{waiver.label}: {control_id} was not judged in this run; it waives nothing"
            )
    uses.sort(key=lambda u: u.waiver.number)
    return WaiverOutcome(
        file=waivers,
        results=tuple(out),
        marks=marks,
        before=before,
        uses=tuple(uses),
        notes=tuple(notes),
    )
