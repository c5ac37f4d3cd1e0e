"""What the judges derive once per run (`common.once`, kept in the profile's memo) and what
they remember per address or text: every profile and every capture gets its own answers,
whatever was judged before in the same process (issue #17)."""

from __future__ import annotations

import copy
import ipaddress
import pickle
from dataclasses import replace

from conformance.judge import air_gapped, hybrid
from conformance.judge.common import NameIndex, name_index, once, target_view
from conformance.observe.records import Observations
from conformance.profile_model import (
    MEMO_EVIDENCE,
    Cloud,
    CloudEndpoint,
    Mode,
    NameHint,
    Profile,
    Target,
)
from conformance.verdict import Verdict
from tests.defects import ADMIN, CUCM, DNS_SERVER, OUTSIDE, TARGET, defect_profile
from tests.judge.factory import Scenario, ip

HINTED = "203.0.113.20"  # the hybrid profile's hint names it api.imagicle.com


def tcp_leak() -> Observations:
    """The target opens a connection to an outside address, and one to CUCM."""
    s = Scenario()
    s.flow(TARGET, CUCM, 8443)
    s.flow(TARGET, OUTSIDE, 443)
    return s.observations()


def onprem_only() -> Observations:
    """The target talks to CUCM only."""
    s = Scenario()
    s.flow(TARGET, CUCM, 8443)
    return s.observations()


def hybrid_profile(*, hint: bool) -> Profile:
    """A hybrid site allowing api.imagicle.com:443; `hint` names HINTED so."""
    hints = (NameHint(ip(HINTED), "api.imagicle.com"),) if hint else ()
    cloud = Cloud(("licensing",), (CloudEndpoint("api.imagicle.com", 443),), hints=hints)
    return replace(defect_profile(), mode=Mode.HYBRID, cloud=cloud)


def unnamed_cloud_flow() -> Observations:
    """A connection to HINTED with no SNI, Host or DNS answer: only a hint can name it."""
    s = Scenario()
    s.flow(TARGET, HINTED, 443)
    return s.observations()


def test_two_profiles_judging_one_capture_get_their_own_verdicts() -> None:
    obs = tcp_leak()
    narrow = defect_profile()
    wide_env = replace(
        narrow.environment,
        networks=(*narrow.environment.networks, ipaddress.ip_network("198.51.100.0/24")),
    )
    wide = replace(narrow, environment=wide_env)
    for _ in range(2):  # the second round finds the first round's values kept
        assert air_gapped.egress(obs, narrow).verdict is Verdict.FAIL
        assert air_gapped.egress(obs, wide).verdict is Verdict.PASS
        assert air_gapped.tm_airgap(obs, narrow).verdict is Verdict.FAIL
        assert air_gapped.tm_airgap(obs, wide).verdict is Verdict.PASS


def test_two_targets_judging_one_capture_get_their_own_flows() -> None:
    obs = tcp_leak()
    target = defect_profile()
    admin = replace(target, target=Target((ip(ADMIN),)))
    assert len(target_view(obs, target).flows) == 2
    assert target_view(obs, admin).flows == ()
    assert air_gapped.egress(obs, admin).verdict is Verdict.INCONCLUSIVE  # silent target
    assert air_gapped.egress(obs, target).verdict is Verdict.FAIL


def test_hybrid_profiles_name_one_capture_each_by_their_own_hints() -> None:
    obs = unnamed_cloud_flow()
    hinted, unhinted = hybrid_profile(hint=True), hybrid_profile(hint=False)
    for _ in range(2):
        assert hybrid.dest(obs, hinted).verdict is Verdict.PASS
        assert hybrid.dest(obs, unhinted).verdict is Verdict.FAIL
        assert [c.basis for c in hybrid.external_conversations(obs, hinted)] == ["hint"]
        assert [c.basis for c in hybrid.external_conversations(obs, unhinted)] == [""]


def test_one_profile_judging_many_captures_gets_each_its_own_verdict() -> None:
    # Each capture is made, judged and dropped: an id reused by a later capture must not
    # find an earlier capture's values, and more captures than the memo keeps come and go.
    profile = defect_profile()
    for round_ in range(4 * MEMO_EVIDENCE):
        leak = round_ % 2 == 0
        obs = tcp_leak() if leak else onprem_only()
        expected = Verdict.FAIL if leak else Verdict.PASS
        assert air_gapped.egress(obs, profile).verdict is expected
        assert len(target_view(obs, profile).flows) == (2 if leak else 1)
        assert len(profile.memo) <= MEMO_EVIDENCE


def _flow_count(obs: Observations, _profile: Profile) -> int:
    return len(obs.flows)


def test_a_value_derived_once_belongs_to_its_capture_even_when_ids_are_reused() -> None:
    # A value that holds nothing of its capture: once the capture is dropped, the next one
    # may take its id, and must not find the dropped one's value.
    profile = defect_profile()
    for round_ in range(4 * MEMO_EVIDENCE):
        leak = round_ % 2 == 0
        obs = tcp_leak() if leak else onprem_only()
        assert once(obs, profile, _flow_count) == (2 if leak else 1)
        del obs


def test_captures_judged_in_turn_keep_their_own_values() -> None:
    profile = defect_profile()
    captures = [tcp_leak(), onprem_only(), tcp_leak()]
    views = [target_view(obs, profile) for obs in captures]
    for obs, view in zip(captures, views, strict=True):
        assert view.obs is obs
    # The memo keeps the latest MEMO_EVIDENCE: asked again, each view is its capture's.
    for obs in captures:
        assert target_view(obs, profile).obs is obs
    assert len(profile.memo) == MEMO_EVIDENCE


def test_a_copied_or_pickled_profile_starts_with_an_empty_memo() -> None:
    obs = tcp_leak()
    profile = defect_profile()
    air_gapped.egress(obs, profile)
    assert len(profile.memo) == 1
    for other in (
        pickle.loads(pickle.dumps(profile)),
        copy.deepcopy(profile),
        replace(profile),
    ):
        assert other == profile
        assert hash(other) == hash(profile)
        assert repr(other) == repr(profile)
        assert len(other.memo) == 0


def test_the_view_answers_for_each_address_object_it_is_asked_about() -> None:
    # Addresses made and dropped one after another reuse ids: each is answered for itself.
    view = target_view(tcp_leak(), defect_profile())
    for n in range(1, 200):
        assert not view.outside(ipaddress.ip_address(f"192.0.2.{n}"))
        assert view.outside(ipaddress.ip_address(f"198.51.100.{n}"))
        assert view.scope_limited(ipaddress.ip_address(f"169.254.1.{n}"))
        assert not view.scope_limited(ipaddress.ip_address(f"203.0.113.{n}"))
        assert not view.is_target(ipaddress.ip_address(f"192.0.2.{n + 50}"))
        assert view.is_target(ipaddress.ip_address(TARGET))


def test_the_view_answers_for_a_flow_it_does_not_hold() -> None:
    obs = tcp_leak()
    view = target_view(obs, defect_profile())
    flow = obs.flows[1]
    turned = replace(flow, initiator=flow.responder, responder=flow.initiator)
    assert view.initiated(flow)
    assert not view.initiated(turned)
    assert view.outgoing == obs.flows and view.incoming == ()


def test_the_name_index_gives_the_same_names_whichever_is_asked_first() -> None:
    s = Scenario()
    s.dns(TARGET, DNS_SERVER, "api.imagicle.com", answers=(OUTSIDE,))
    flow = s.flow(TARGET, OUTSIDE, 443)
    s.tls(flow, "api.imagicle.com")
    request = s.http(flow, "GET", "/", host="www.imagicle.com:443")
    obs = s.observations()
    by_names, by_requests = NameIndex(obs), NameIndex(obs)
    assert by_requests.requests(flow) == (request,)
    assert (
        by_names.names(flow) == by_requests.names(flow) == ("api.imagicle.com", "www.imagicle.com")
    )
    assert by_names.requests(flow) == (request,)
    assert name_index(obs, defect_profile()).names(flow) == by_names.names(flow)


def test_what_was_derived_from_a_capture_is_let_go_when_asked() -> None:
    """Run.finish forgets the judges' indexes before the report is written (#17): only that
    capture's, and judging it again derives them afresh, the same."""
    profile = defect_profile()
    judged, other = tcp_leak(), onprem_only()
    first = target_view(judged, profile)
    kept = target_view(other, profile)
    profile.memo.forget(judged)
    profile.memo.forget(tcp_leak())  # never judged: nothing to forget
    assert len(profile.memo) == 1 and target_view(other, profile) is kept
    again = target_view(judged, profile)
    assert again is not first and again.flows == first.flows and again.opened == first.opened
