"""Every catalog control and the judge that decides it: `JUDGES[control_id](obs, profile)`.

Each judge is a pure function of the run's `Observations` and the `Profile`. Where a live
host's sockets give a second opinion on a capture control (AG-EGRESS, AG-INGRESS, HY-INGRESS,
PX-ONLY: docs/hosts.md), the worse of the two verdicts stands, and the other's reason is kept
in the facts: a pass from one source never hides a fail or a gap of the other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from conformance.judge import (
    air_gapped,
    endpoint,
    host,
    hybrid,
    impostor,
    perimeter,
    proxy,
    telemetry,
)
from conformance.judge.result import ControlResult
from conformance.observe.records import Observations
from conformance.profile_model import Profile

Judge = Callable[[Observations, Profile], ControlResult]
SocketOpinion = Callable[..., ControlResult | None]


def with_host_opinion(capture: Judge, sockets: SocketOpinion) -> Judge:
    """`capture`'s judgement, made worse by the host's sockets when they say worse."""

    def judge(obs: Observations, profile: Profile) -> ControlResult:
        result = capture(obs, profile)
        if obs.host is None:
            return result
        second = sockets(obs.host, profile)
        if second is None or second.control_id != result.control_id:
            return result  # the host's sockets say nothing about this control in this mode
        worse, other = (result, second)
        if second.verdict.rank > result.verdict.rank:
            worse, other = second, result
        facts = {
            **worse.facts,
            "other_source": f"{other.verdict.value}: {other.reason}",
        }
        return ControlResult(
            worse.control_id, worse.verdict, worse.reason, worse.findings + other.findings, facts
        )

    judge.__doc__ = capture.__doc__
    return judge


JUDGES: Final[Mapping[str, Judge]] = {
    "AG-EGRESS": with_host_opinion(air_gapped.egress, host.socket_egress),
    "AG-INGRESS": with_host_opinion(air_gapped.ingress, host.socket_ingress),
    "AG-CLOUD-NAMES": air_gapped.cloud_names,
    "AG-ONPREM": air_gapped.onprem,
    "AG-PERIMETER": perimeter.perimeter,
    "TM-AIRGAP": air_gapped.tm_airgap,
    "HY-DEST": hybrid.dest,
    "HY-TLS": hybrid.tls,
    "HY-CERT": impostor.impostor,
    "HY-ENDPOINT": endpoint.endpoints,
    "HY-INGRESS": with_host_opinion(hybrid.ingress, host.socket_ingress),
    "HY-DEACTIVATED": hybrid.deactivated,
    "PX-ONLY": with_host_opinion(proxy.only, host.socket_egress),
    "PX-CONNECT": proxy.connect,
    "PX-DNS": proxy.dns,
    "TM-OPTOUT": telemetry.optout,
    "TM-MINIMAL": telemetry.minimal,
    "TM-CHANNEL": telemetry.channel,
    "HOST-HOSTS": host.hosts_file,
    "HOST-PROXY": host.proxy_setting,
    "HOST-TELEMETRY": host.product_settings,
}


def judge(control_id: str, obs: Observations, profile: Profile) -> ControlResult:
    """The judgement of `control_id` (KeyError for a control no judge decides)."""
    return JUDGES[control_id](obs, profile)
