"""`profile draft`: write a deployment profile from captures, for a person to review.

    infer.py   what the captures show: target, segment, endpoints, proxy, cloud names
    links.py   the frame-level pass: which MAC carries which address (on-link or routed)
    write.py   the YAML text with comments (what was seen, why, what would fail)

The draft never legitimises a leak: nothing outside the networks is written as allowed, a
network is never widened by inference over a routed destination, a cloud name is proposed
only when Imagicle documents it; everything else is listed as a comment, with the findings
the capture judges make on the draft as written. It starts with `draft: true`, which `run`
refuses until a person has reviewed it and removed the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from conformance.catalog import load_catalog
from conformance.draft import infer
from conformance.draft.links import read_links
from conformance.draft.write import FailLine, render
from conformance.errors import ConformanceError
from conformance.judge.controls import JUDGES
from conformance.judge.result import Severity
from conformance.observe.builder import observe_captures
from conformance.observe.records import Observations
from conformance.profile import parse_profile
from conformance.profile_model import Environment, Mode, Profile

MAX_FAIL_LINES: Final = 20  # per control: enough to see the kind of leak; the count says the rest
# The capture judges: what `run --pcap` decides from these captures alone.
# The controls a capture alone decides: the draft says which of them it would fail as written.
CAPTURE_CONTROLS: Final = (
    "AG-EGRESS",
    "AG-INGRESS",
    "AG-CLOUD-NAMES",
    "AG-ONPREM",
    "HY-DEST",
    "HY-TLS",
    "HY-INGRESS",
    "HY-DEACTIVATED",
    "PX-ONLY",
    "PX-CONNECT",
    "PX-DNS",
)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class DraftRequest:
    """What `profile draft` was asked: captures, and what the person already knows."""

    captures: tuple[Path, ...]
    targets: tuple[str, ...] = ()
    mode: str = "air-gapped"
    networks: tuple[str, ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class Draft:
    """The draft's text, the profile it loads as, and notes for the person reviewing it."""

    text: str
    profile: Profile
    notes: tuple[str, ...]
    would_fail: tuple[FailLine, ...]


def draft_profile(request: DraftRequest) -> Draft:
    """Read the captures and write the draft (ConformanceError for bad input: exit 3)."""
    if not request.captures:
        raise ConformanceError("profile draft: give at least one --pcap FILE")
    mode = Mode(request.mode)
    given_targets = infer.parse_targets(request.targets)
    given_networks = infer.parse_networks(request.networks)
    obs = observe_captures(request.captures)
    links = read_links(request.captures)
    targets, target_why = infer.choose_targets(obs, links, given_targets)
    if not any(f.initiator in targets or f.responder in targets for f in obs.flows):
        target_why.append(
            f"no flow of {', '.join(str(t) for t in targets)} is in the captures: check --target"
        )
    roles = infer.peer_roles(obs, targets, links)
    if given_networks:
        networks = [infer.Network(n, "given with --network") for n in given_networks]
        network_notes: list[str] = []
        environment = Environment(networks=given_networks)
        for target in targets:
            if not environment.contains(target):
                raise ConformanceError(
                    f"--target {target} is outside every --network: the target is part of"
                    " the Customer Environment (HA 1); add its network"
                )
    else:
        networks, network_notes = infer.infer_networks(targets, roles, links)
        environment = Environment(networks=tuple(n.network for n in networks))
    found_proxy, proxy_why = (None, "")
    if mode is Mode.HYBRID:
        found_proxy, proxy_why = infer.infer_proxy(obs, targets, environment)
    peers, clients = infer.onprem_peers(obs, targets, environment, links, found_proxy)
    inference = infer.Inference(
        mode=mode,
        targets=targets,
        target_why=target_why,
        networks=networks,
        network_notes=network_notes,
        peers=peers,
        clients=clients,
        proxy=found_proxy,
        proxy_why=proxy_why,
    )
    inference.outside = infer.outside_destinations(obs, targets, environment, roles)
    if mode is Mode.HYBRID:
        provisional = infer.provisional_profile(targets, environment.networks, mode, found_proxy)
        inference.cloud, inference.cloud_unproposed = infer.cloud_endpoints(obs, provisional)
    name = request.name or _default_name(request.captures[0])
    captures = obs.captures
    source = Path("draft.yaml")
    text = render(inference, name, captures)
    profile = _load(text, source)
    failing, more = _would_fail(obs, profile)
    text = render(inference, name, captures, failing, more)
    notes = [*target_why[:1], *network_notes, *inference.cloud_unproposed]
    if failing:
        controls = sorted({line.control for line in failing})
        notes.append(f"the captures fail {', '.join(controls)} with this draft (see its end)")
    return Draft(text, _load(text, source), tuple(notes), tuple(failing))


def _default_name(capture: Path) -> str:
    stem = _NAME_CHARS.sub("-", capture.stem).strip("-") or "site"
    return f"draft-{stem}"


def _load(text: str, source: Path) -> Profile:
    """The draft as the loader reads it: a draft that does not load is the harness's bug."""
    return parse_profile(yaml.safe_load(text), source)


def _would_fail(obs: Observations, profile: Profile) -> tuple[list[FailLine], dict[str, int]]:
    """The violations the capture judges find with the draft as written, per control."""
    lines: list[FailLine] = []
    more: dict[str, int] = {}
    for control in load_catalog():
        judge = JUDGES.get(control.id) if control.id in CAPTURE_CONTROLS else None
        if judge is None or not control.applies_to(profile):
            continue
        violations = [f for f in judge(obs, profile).findings if f.severity is Severity.VIOLATION]
        lines += [FailLine(control.id, f.summary) for f in violations[:MAX_FAIL_LINES]]
        if len(violations) > MAX_FAIL_LINES:
            more[control.id] = len(violations) - MAX_FAIL_LINES
    return lines, more
