"""What the capture's DNS says about names and addresses (controls.md decision 8).

SNI, a CONNECT host and an HTTP Host are claims the client makes. A DNS answer is the
evidence they are measured against:

- `answered(name)`: every address any DNS answer in the capture gave the name (any client,
  any resolver, any time in the window). An address answered for a CNAME target counts for
  every owner name whose chain led to it (RFC 1034 §3.6.2), across responses too.
- `agreement(name, address)`: AGREES when the address is among them, MISMATCH when the
  name has answers and the address is not one of them (domain fronting, a name resolved
  elsewhere, a hard-coded address), UNANSWERED when the capture holds no address answer
  for the name (the claim alone then maps the flow, and the report says so).
- `names_at(address, at)`: the names the target's *own* DNS answers gave an address, from
  an answer received before `at` and still valid then (TTL, for every repeat of the query:
  `DnsQuery.answer_runs`), the latest answer's names first: what names a flow that carries
  no claim.

Only DNS proper counts (protocol "dns"): mDNS and LLMNR answers name hosts of the local
segment, and any neighbour may send them unasked.
"""

from __future__ import annotations

import bisect
import functools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from conformance.judge.common import ADDRESS_RTYPES, MAX_PARSED_TEXTS, address_of, once
from conformance.names import normalize_name
from conformance.observe.records import DnsQuery, EchKind, Observations, TlsClientHello
from conformance.profile_model import Profile

# A DNS answer is still usable this long after its TTL ran out (clock skew, resolver caching).
TTL_SLACK_SECONDS = 5.0
# Names followed along one CNAME chain: resolvers give up after 8-16 links (BIND follows 16),
# and a loop in the capture's answers must not run forever.
MAX_CNAME_CHAIN = 16
CNAME_RTYPE = 5  # RFC 1035
# ECH kinds under which the SNI is only the public name (decision 9); GREASE hides nothing.
HIDDEN_ECH = frozenset({EchKind.REAL, EchKind.UNKNOWN})


def real_name_hidden(hello: TlsClientHello | None) -> bool:
    """Whether a ClientHello's SNI is only ECH's public name (decision 9)."""
    return hello is not None and hello.ech in HIDDEN_ECH


class Agreement(StrEnum):
    """How a claimed name relates to the address a flow went to (decision 8)."""

    AGREES = "agrees"  # a DNS answer in the capture gave the name this address
    MISMATCH = "mismatch"  # the name has DNS answers in the capture, none with this address
    UNANSWERED = "unanswered"  # no DNS answer for the name in the capture: the claim alone


@functools.lru_cache(maxsize=MAX_PARSED_TEXTS)
def name_key(name: str) -> str:
    """A name as names are compared (decision 4): lower-case, IDNA, no trailing dot."""
    try:
        return normalize_name(name)
    except ValueError:
        return name.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class _Validity:
    """An answer the target received: valid from `start` until `end` (TTL), for `names`."""

    start: float
    end: float
    names: tuple[str, ...]  # the query's name first, then the chain's names


def dns_names(obs: Observations, profile: Profile) -> DnsNames:
    """What the DNS answers of `obs` say (`DnsNames`): one per run, shared by the judges."""
    return once(obs, profile, DnsNames)


class DnsNames:
    """Names and addresses from every DNS answer of a capture, built once per run (`dns_names`)."""

    def __init__(self, obs: Observations, profile: Profile) -> None:
        self._direct: dict[str, set[str]] = {}  # name -> addresses answered for it
        self._targets: dict[str, set[str]] = {}  # CNAME owner -> target names
        self._owners: dict[str, set[str]] = {}  # CNAME target -> owner names
        self._valid: dict[str, list[_Validity]] = {}  # address -> the target's own answers
        self._answered: dict[str, frozenset[str]] = {}  # name -> addresses, once computed
        for query in obs.dns:
            if query.protocol != "dns":
                continue
            self._add_answers(query)
            if profile.is_target(query.client):
                self._add_validity(query)
        for entries in self._valid.values():
            entries.sort(key=lambda v: v.start)
        self._starts = {a: [v.start for v in entries] for a, entries in self._valid.items()}

    def _add_answers(self, query: DnsQuery) -> None:
        for answer in query.answers:
            owner = name_key(answer.name)
            if answer.rtype == CNAME_RTYPE:
                target = name_key(answer.value)
                self._targets.setdefault(owner, set()).add(target)
                self._owners.setdefault(target, set()).add(owner)
            elif answer.rtype in ADDRESS_RTYPES:
                address = address_of(answer.value)
                if address is not None:
                    self._direct.setdefault(owner, set()).add(str(address))

    def _add_validity(self, query: DnsQuery) -> None:
        chain = tuple(
            dict.fromkeys([name_key(query.qname), *(name_key(a.name) for a in query.answers)])
        )
        runs = query.answer_runs or tuple(
            (t, t) for t in (query.time, query.last_time) if t is not None
        )
        for answer in query.answers:
            address = address_of(answer.value) if answer.rtype in ADDRESS_RTYPES else None
            if address is None:
                continue
            entries = self._valid.setdefault(str(address), [])
            for start, end in runs:
                entries.append(_Validity(start, end + answer.ttl, chain))

    def answered(self, name: str) -> frozenset[str]:
        """Every address the capture's DNS answers gave `name`, CNAME chains followed."""
        key = name_key(name)
        found = self._answered.get(key)
        if found is None:
            addresses: set[str] = set()
            for alias in self._chain(key, self._targets):
                addresses |= self._direct.get(alias, set())
            found = self._answered[key] = frozenset(addresses)
        return found

    def agreement(self, name: str, address: str) -> tuple[Agreement, frozenset[str]]:
        """Whether `address` is one the capture's DNS gave `name`, and the addresses it gave."""
        answered = self.answered(name)
        if not answered:
            return Agreement.UNANSWERED, answered
        return (Agreement.AGREES if address in answered else Agreement.MISMATCH), answered

    def names_at(self, address: str, at: float) -> tuple[str, ...]:
        """The names the target's own DNS answers gave `address`, usable at `at`.

        The latest usable answer wins (its query's name, the names of its chain, and every
        owner whose CNAME chain leads to them); empty when none is usable.
        """
        entries = self._valid.get(address, ())
        # Sorted by start: walk back from the last answer received by `at`; the first one
        # still valid then is the latest usable.
        for index in range(bisect.bisect_right(self._starts.get(address, ()), at) - 1, -1, -1):
            if at <= entries[index].end + TTL_SLACK_SECONDS:
                return self._with_owners(entries[index].names)
        return ()

    def all_names_at(self, address: str, at: float) -> tuple[str, ...]:
        """Every name any of the target's own DNS answers usable at `at` gave `address`."""
        return self._with_owners(n for v in self._usable(address, at) for n in v.names)

    def _usable(self, address: str, at: float) -> list[_Validity]:
        return [
            v for v in self._valid.get(address, ()) if v.start <= at <= v.end + TTL_SLACK_SECONDS
        ]

    def _with_owners(self, names: Iterable[str]) -> tuple[str, ...]:
        found: dict[str, None] = {}
        for name in names:
            found.update(dict.fromkeys(self._chain(name, self._owners)))
        return tuple(found)

    def _chain(self, name: str, edges: dict[str, set[str]]) -> Iterable[str]:
        """`name` and every name reachable from it along `edges`, at most MAX_CNAME_CHAIN."""
        seen: dict[str, None] = {name: None}
        todo = deque([name])
        while todo and len(seen) < MAX_CNAME_CHAIN:
            for following in sorted(edges.get(todo.popleft(), ())):
                if following not in seen and len(seen) < MAX_CNAME_CHAIN:
                    seen[following] = None
                    todo.append(following)
        return seen
