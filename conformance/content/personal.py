"""Personal data in a message tree: e-mail addresses, phone numbers, person and user names,
client addresses (TM-MINIMAL, CT 3 "anonymous data", CT 10 note *).

Every string is also tried as nested JSON, base64 (then gzip) and gzip, so a value hidden in
an encoded blob is found. A hit records where it was (a field path such as
`ucx_suite.operators[0].email` or `blob<base64><gzip>.email`) and the value itself, which is
only ever used to redact it (`redact`); findings never show it.

What counts:
- an e-mail address anywhere (pattern), or any value of an e-mail-like field (email, mail, upn);
- a phone number: digits with a leading `+` or separators (7 to 15 digits), or any value of a
  phone-like field (phone, telephone, mobile, extension);
- a person or user name: a value of a name-like field (username, display_name, first_name, ...),
  a `name` inside a person-like object (operators, users, contacts, ...), or a known person's
  name anywhere (the lab directory's people, or names a caller supplies);
- an IP address other than the server's own, except in a field the caller says holds site
  infrastructure (DNS servers, gateways, CUCM): a client address;
- a placeholder `[redacted:email]` (`phone`, `name`, `address`) that `Scanner.redacted` left
  where a personal value was: content kept as evidence is redacted, and judging it again
  must find the same personal data (conformance.content.redact).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import ipaddress
import json
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from conformance.telemetry_fields import normalise_key

EMAIL: Final = "e-mail address"
PHONE: Final = "phone number"
PERSON: Final = "person or user name"
ADDRESS: Final = "client address"

_EMAIL_RE: Final = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_RE: Final = re.compile(r"(?<![\w.:/-])\+?\(?\d[\d ()-]{5,}\d(?![\w.:/-])")
_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_V4_RE: Final = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_V6_RE: Final = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_BASE64_RE: Final = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")
PLACEHOLDER_KINDS: Final = {EMAIL: "email", PHONE: "phone", PERSON: "name", ADDRESS: "address"}
_PLACEHOLDER_RE: Final = re.compile(r"\[redacted:(email|phone|name|address)\]")
_PLACEHOLDER_KIND: Final = {slug: kind for kind, slug in PLACEHOLDER_KINDS.items()}

EMAIL_KEYS: Final = frozenset({"email", "mail", "emailaddress", "upn", "userprincipalname"})
PHONE_KEYS: Final = frozenset(
    {"phone", "phonenumber", "telephone", "telephonenumber", "mobile", "msisdn", "tel", "cell"}
    | {"extension", "directorynumber", "callerid", "callingnumber", "callednumber"}
)
NAME_KEYS: Final = frozenset(
    {"username", "user", "login", "samaccountname", "displayname", "fullname", "firstname"}
    | {"lastname", "givenname", "surname", "sn", "cn", "personname", "contactname"}
    | {"callername", "calleename", "operatorname", "agentname", "owner"}
)
PERSON_CONTAINERS: Final = frozenset(
    {"operators", "operator", "users", "user", "people", "persons", "person", "agents", "agent"}
    | {"contacts", "contact", "callers", "caller", "callees", "employees", "members", "accounts"}
)
MIN_PHONE_DIGITS: Final = 7
MAX_PHONE_DIGITS: Final = 15
MAX_NESTING: Final = 6

AddressKind = Callable[[tuple[str, ...]], str | None]
"""Field path (keys only) -> "own" | "infrastructure" | None (any other field)."""


@dataclass(frozen=True, slots=True)
class PersonalHit:
    kind: str  # EMAIL | PHONE | PERSON | ADDRESS
    path: str  # where: "a.b[0].c", with <json>, <base64>, <gzip> where a value was decoded
    value: str  # the personal value, for redaction only


@dataclass(frozen=True, slots=True)
class Scanner:
    """What is not personal on this site: the server's own addresses, infrastructure fields."""

    own_addresses: frozenset[str] = frozenset()
    known_names: tuple[str, ...] = ()
    address_kind: AddressKind | None = None

    def scan(self, tree: Any) -> list[PersonalHit]:
        hits: list[PersonalHit] = []
        self._walk(tree, (), "", hits, 0)
        unique: dict[tuple[str, str, str], PersonalHit] = {}
        for hit in hits:
            unique.setdefault((hit.kind, hit.path, hit.value), hit)
        return list(unique.values())

    def _walk(
        self, value: Any, keys: tuple[str, ...], path: str, hits: list[PersonalHit], depth: int
    ) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                key_text = str(key)
                self._text(key_text, keys, path, hits, depth, as_key=True)
                self._walk(
                    item, (*keys, key_text), f"{path}.{key_text}" if path else key_text, hits, depth
                )
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._walk(item, keys, f"{path}[{index}]", hits, depth)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int | float):
            if keys and normalise_key(keys[-1]) in PHONE_KEYS:
                hits.append(PersonalHit(PHONE, path, str(value)))
        elif isinstance(value, str):
            self._by_key(value, keys, path, hits)
            self._text(value, keys, path, hits, depth)

    def _by_key(
        self, value: str, keys: tuple[str, ...], path: str, hits: list[PersonalHit]
    ) -> None:
        if not keys or not value.strip():
            return
        key = normalise_key(keys[-1])
        parent = normalise_key(keys[-2]) if len(keys) > 1 else ""
        if key in EMAIL_KEYS:
            hits.append(PersonalHit(EMAIL, path, value))
        elif key in PHONE_KEYS and any(c.isdigit() for c in value):
            hits.append(PersonalHit(PHONE, path, value))
        elif key in NAME_KEYS or (key == "name" and parent in PERSON_CONTAINERS):
            hits.append(PersonalHit(PERSON, path, value))

    def _text(
        self,
        text: str,
        keys: tuple[str, ...],
        path: str,
        hits: list[PersonalHit],
        depth: int,
        *,
        as_key: bool = False,
    ) -> None:
        where = f"{path} (field name)" if as_key else path
        for match in _PLACEHOLDER_RE.finditer(text):
            hits.append(PersonalHit(_PLACEHOLDER_KIND[match.group(1)], where, match.group()))
        for match in _EMAIL_RE.finditer(text):
            hits.append(PersonalHit(EMAIL, where, match.group()))
        for match in _PHONE_RE.finditer(text):
            if _looks_like_phone(match.group()):
                hits.append(PersonalHit(PHONE, where, match.group()))
        lowered = text.lower()
        for name in self.known_names:
            if name and name.lower() in lowered:
                start = lowered.index(name.lower())
                hits.append(PersonalHit(PERSON, where, text[start : start + len(name)]))
        for address in _addresses(text):
            if self._personal_address(address, keys):
                hits.append(PersonalHit(ADDRESS, where, address))
        if not as_key and depth < MAX_NESTING:
            for marker, nested in _decodings(text):
                self._walk(nested, keys, f"{path}<{marker}>", hits, depth + 1)

    def redacted(self, tree: Any) -> tuple[Any, list[PersonalHit]]:
        """A copy of `tree` with every personal value replaced by `placeholder(kind)`, and the
        hits. A value found inside an encoding (base64, gzip) replaces the whole encoded
        string; one inside nested JSON text is replaced in the text."""
        hits: list[PersonalHit] = []
        return self._redact(tree, (), "", hits), hits

    def _redact(self, value: Any, keys: tuple[str, ...], path: str, hits: list[PersonalHit]) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                key_text = str(key)
                new_key = self._redact_text(key_text, keys, path, hits, as_key=True)
                while new_key in out:  # two keys redacted to the same placeholder
                    new_key += "'"
                sub = f"{path}.{key_text}" if path else key_text
                out[new_key] = self._redact(item, (*keys, key_text), sub, hits)
            return out
        if isinstance(value, list):
            return [self._redact(item, keys, f"{path}[{i}]", hits) for i, item in enumerate(value)]
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int | float):
            if keys and normalise_key(keys[-1]) in PHONE_KEYS:
                hits.append(PersonalHit(PHONE, path, str(value)))
                return placeholder(PHONE)
            return value
        if isinstance(value, str):
            by_key: list[PersonalHit] = []
            self._by_key(value, keys, path, by_key)
            if by_key:
                hits.extend(by_key)
                return placeholder(by_key[0].kind)
            return self._redact_text(value, keys, path, hits)
        return value

    def _redact_text(
        self,
        text: str,
        keys: tuple[str, ...],
        path: str,
        hits: list[PersonalHit],
        *,
        as_key: bool = False,
    ) -> str:
        found: list[PersonalHit] = []
        self._text(text, keys, path, found, 0, as_key=as_key)
        found = [h for h in found if not _PLACEHOLDER_RE.fullmatch(h.value)]
        if not found:
            return text
        hits.extend(found)
        out = text
        for hit in sorted(found, key=lambda h: -len(h.value)):
            if len(hit.value) < 2:
                continue
            out = out.replace(hit.value, placeholder(hit.kind))
            escaped = json.dumps(hit.value)[1:-1]
            if escaped != hit.value:
                out = out.replace(escaped, placeholder(hit.kind))
        left: list[PersonalHit] = []
        self._text(out, keys, path, left, 0, as_key=as_key)
        if any(not _PLACEHOLDER_RE.fullmatch(h.value) for h in left):
            return placeholder(found[0].kind)  # hidden in an encoding: the whole value goes
        return out

    def _personal_address(self, address: str, keys: tuple[str, ...]) -> bool:
        parsed = ipaddress.ip_address(address)
        if str(parsed) in self.own_addresses:
            return False
        if parsed.is_loopback or parsed.is_unspecified or parsed.is_link_local:
            return False
        kind = self.address_kind(keys) if self.address_kind else None
        return kind != "infrastructure"


def _looks_like_phone(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    if not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS or _DATE_RE.fullmatch(text.strip()):
        return False
    return text.startswith("+") or any(c in text for c in " -()")


def _addresses(text: str) -> list[str]:
    found: list[str] = []
    for regex in (_V4_RE, _V6_RE):
        for match in regex.finditer(text):
            try:
                found.append(str(ipaddress.ip_address(match.group())))
            except ValueError:
                continue
    return found


def _decodings(text: str) -> Iterable[tuple[str, Any]]:
    """Values hidden in `text`: nested JSON, base64 (then gzip or JSON), gzip as latin-1."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and len(stripped) > 1:
        try:
            yield "json", json.loads(stripped)
            return
        except ValueError:
            pass
    if _BASE64_RE.fullmatch(stripped) and not stripped.isdigit():
        raw = _b64(stripped)
        if raw is not None:
            if raw[:2] == b"\x1f\x8b":
                try:
                    raw = gzip.decompress(raw)
                    yield "base64><gzip", _as_tree(raw)
                    return
                except (OSError, EOFError, zlib.error):
                    return
            decoded = _as_tree(raw)
            if decoded is not None:
                yield "base64", decoded


def _b64(text: str) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    for decoder in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decoder(padded.encode())
        except (binascii.Error, ValueError):
            continue
    return None


def _as_tree(raw: bytes) -> Any:
    """Decoded bytes as a JSON value or text; None when they are not text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if sum(c.isprintable() or c in "\t\r\n" for c in text) < 0.9 * len(text):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


REDACTED: Final = {EMAIL: "[e-mail redacted]", PHONE: "[phone redacted]"}


def redact(text: str, hits: Sequence[PersonalHit]) -> str:
    """`text` with every hit's value replaced by a marker naming its kind."""
    for hit in sorted(hits, key=lambda h: -len(h.value)):
        if len(hit.value) < 2:
            continue
        text = text.replace(hit.value, marker(hit.kind))
        escaped = json.dumps(hit.value)[1:-1]  # as it appears inside a JSON dump
        if escaped != hit.value:
            text = text.replace(escaped, marker(hit.kind))
    return text


def placeholder(kind: str) -> str:
    """What a personal value of `kind` is replaced by in kept evidence (`[redacted:email]`);
    the scanner counts it as personal data of that kind when the evidence is judged again."""
    return f"[redacted:{PLACEHOLDER_KINDS.get(kind, 'name')}]"


def marker(kind: str) -> str:
    """What a redacted value of `kind` reads as."""
    return REDACTED.get(kind, f"[{kind} redacted]")
