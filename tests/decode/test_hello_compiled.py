"""The compiled `quick_hello` (decode/_hello.pyx) answers exactly as the Python one.

On every hello the TLS tests build (tests/decode/test_tls.py), on hellos real OpenSSL sends
(tests/tls_sessions.py), on hellos built to be unusual (duplicated extensions, GREASE
everywhere, odd names, an empty extension block, HelloRetryRequests, too many extensions,
fields too long to remember) and on damaged copies of all of them: every byte of the first
200 set to a few values, every cut, every 16-bit window off by one (so every length field
±1). Each is asked with nothing remembered and with everything remembered.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator

import pytest

from conformance.decode import tls
from tests.compiled_paths import COMPILED_HELLO
from tests.decode.test_tls import (
    EXT_ECH,
    _built_hello,
    _damaged_cases,
    _usual_hellos,
    _vector,
    captured,
    ech_client_hello,
    extension,
    grease_client_hello,
    hand_made_client_hello,
    hello_retry_request,
    outer_ech,
    records,
    sni_extension,
)
from tests.tls_sessions import SessionFactory

pytestmark = pytest.mark.skipif(not COMPILED_HELLO, reason="the compiled hello reader is not built")

Hello = Callable[[bytes], object]

GREASE = [0x0A0A + 0x1010 * i for i in range(16)]
SNI, ALPN, VERSIONS = b"\x00\x00", b"\x00\x10", b"\x00\x2b"
OUTER_EXTENSIONS = b"\xfd\x00"


def _compiled() -> Hello:
    module = tls._COMPILED
    assert module is not None
    quick: Hello = module.quick_hello
    return quick


def _forget() -> None:
    module = tls._COMPILED
    assert module is not None
    module.forget()
    for cache in (
        tls._GREASE_FREE,
        tls._SERVER_NAMES,
        tls._ALPNS,
        tls._CLIENT_HELLOS,
        tls._SERVER_HELLOS,
    ):
        cache.clear()


def _answer(read: Hello, payload: bytes) -> tuple[str, object]:
    """The answer, with its repr: bools stay bools, str stays str."""
    info = read(payload)
    return repr(info), info


def _u16s(values: list[int]) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def _client(*extensions: bytes, suites: bytes = b"\x13\x01", session: bytes = b"") -> bytes:
    """A one-record ClientHello with `extensions` (in one block), `suites` and `session`."""
    block = b"".join(extensions)
    body = b"\x03\x03" + bytes(32) + _vector(1, session) + _vector(2, suites) + b"\x01\x00"
    body += _vector(2, block)
    return records(b"\x01" + len(body).to_bytes(3, "big") + body)


def _alpn(*names: bytes) -> bytes:
    return extension(ALPN, _vector(2, b"".join(_vector(1, n) for n in names)))


def _versions(*values: int) -> bytes:
    return extension(VERSIONS, _vector(1, _u16s(list(values))))


def _server(*extensions: bytes, hello_retry: bool = False, session: bytes = b"") -> bytes:
    random_ = tls.HELLO_RETRY_RANDOM if hello_retry else bytes(range(32))
    body = b"\x03\x03" + random_ + _vector(1, session) + b"\x13\x01\x00"
    if extensions:
        body += _vector(2, b"".join(extensions))
    return records(b"\x02" + len(body).to_bytes(3, "big") + body)


def _unusual_hellos() -> list[bytes]:
    """Hellos built to meet each rule of the one-pass readers."""
    host = sni_extension(b"api.example.com")
    alpn = _alpn(b"h2", b"http/1.1")
    versions = _versions(0x0304, 0x0303)
    other = extension(b"\x00\x17", b"")
    grease_ext = extension(b"\x3a\x3a", b"\x00")
    hellos = [
        _client(),  # an empty extension block
        hand_made_client_hello(b""),  # none at all
        _client(host, alpn, versions, other, grease_ext),
        _client(host, alpn, versions, suites=_u16s([*GREASE, 0x1301, *GREASE])),
        _client(host, suites=_u16s(GREASE)),  # nothing but GREASE
        _client(_versions(*GREASE, 0x0304)),
        _client(_versions(*GREASE)),
        _client(_alpn(*[v.to_bytes(2, "big") for v in GREASE], b"h2")),
        _client(_alpn(*[v.to_bytes(2, "big") for v in GREASE])),
        _client(_alpn(b"\x0a\x0a\x0a", b"\x0a", b"\x0a\x0b")),  # GREASE only if 2 bytes
        _client(_alpn(b"h\xffx", b"\x00", b"H2")),
        _client(host, session=bytes(32)),
        _client(host, session=bytes(33)),
        _client(extension(OUTER_EXTENSIONS, b"\x02\x00\x0a"), host),
        _client(*(extension(struct.pack("!H", 0x100 + i), b"") for i in range(63)), host),
        _client(*(extension(struct.pack("!H", 0x100 + i), b"") for i in range(64)), host),
        _client(*(extension(struct.pack("!H", 0x100 + i), b"") for i in range(65)), host),
        _client(*(extension(struct.pack("!H", 0x100 + i), b"") for i in range(200))),
        _client(sni_extension(b"a" * 1100)),  # too long to remember
        _client(host, suites=_u16s(list(range(0x100, 0x100 + 600)))),
        ech_client_hello(outer_ech()),
        ech_client_hello(b"\x01", extension(OUTER_EXTENSIONS, b"\x02\x00\x0a")),
        ech_client_hello(b"\x02"),
    ]
    for name in (
        b"API.Example.COM",
        b"api.example.com.",
        b"api.example.com...",
        b".",
        b"...",
        b"caf\xc3\xa9.example",
        b"\xff\x80.EXAMPLE.",
        b"back\\slash\x00nul",
        b"\x7f",
    ):
        hellos.append(_client(sni_extension(name), alpn, versions))
    entry = _vector(2, b"x.example")
    hellos += [
        _client(extension(SNI, _vector(2, b"\x01" + entry + b"\x00" + entry))),
        _client(extension(SNI, _vector(2, b"\x00" + entry + b"\x01" + entry))),
        _client(extension(SNI, _vector(2, b"\x00" + entry + b"\x00" + entry))),
        _client(extension(SNI, _vector(2, b"\x01" + entry))),  # no host_name
        _client(extension(SNI, _vector(2, b""))),
    ]
    for ext in (host, alpn, versions, other, grease_ext, extension(EXT_ECH, outer_ech())):
        hellos.append(_client(ext, ext))
        hellos.append(_client(ext, host if ext != host else alpn, ext))
    hellos += [
        hello_retry_request(),
        hello_retry_request(extension(EXT_ECH, bytes(8))),
        hello_retry_request(extension(EXT_ECH, bytes(7))),
        hello_retry_request(extension(b"\x00\x33", b"\x00\x17")),
        _server(),
        _server(extension(VERSIONS, b"\x03\x04")),
        _server(extension(VERSIONS, b"\x03\x04\x00")),
        _server(extension(VERSIONS, b"\x03\x04"), extension(EXT_ECH, bytes(8))),
        _server(extension(EXT_ECH, bytes(3))),  # not a HelloRetryRequest: not read
        _server(extension(VERSIONS, b"\x03\x04"), hello_retry=True),
        _server(extension(EXT_ECH, bytes(8)), extension(EXT_ECH, bytes(8)), hello_retry=True),
        _server(extension(VERSIONS, b"\x03\x04"), session=bytes(32)),
        _server(session=bytes(33)),
    ]
    return hellos


@pytest.fixture(scope="module")
def openssl_hellos(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """The first payload each way of real TLS 1.2 and 1.3 sessions, with and without ALPN."""
    sessions = SessionFactory(tmp_path_factory.mktemp("sessions"))
    made = [
        sessions.raw("api.imagicle.com", [], version="1.2"),
        sessions.raw("api.imagicle.com", [], version="1.3"),
        sessions.http1("grpc.imagicle.com", [], version="1.2"),
        sessions.h2("grpc.imagicle.com", []),
        sessions.hello_only("updates.example.net"),
    ]
    out = []
    for session in made:
        for from_client in (True, False):
            out += [data for side, data in session.chunks if side is from_client][:1]
    return out


def _base_hellos(openssl_hellos: list[bytes]) -> list[bytes]:
    rng = random.Random(8446)
    return [
        *_usual_hellos(),
        captured("tls13_client_hello_after_retry"),
        grease_client_hello(),
        *openssl_hellos,
        *_unusual_hellos(),
        *(_built_hello(rng) for _ in range(300)),
    ]


def _mutations(hello: bytes) -> Iterator[bytes]:
    """Every cut; every byte of the first 200 set to a few values; every 16-bit window ±1."""
    for cut in range(len(hello)):
        yield hello[:cut]
    for at in range(min(len(hello), 200)):
        for value in {0x00, 0x01, 0x7F, 0x80, 0xFF, (hello[at] + 1) % 256, hello[at] ^ 0x20}:
            yield hello[:at] + bytes([value]) + hello[at + 1 :]
    for at in range(len(hello) - 1):
        field = int.from_bytes(hello[at : at + 2], "big")
        for step in (-1, 1):
            yield hello[:at] + ((field + step) % 65536).to_bytes(2, "big") + hello[at + 2 :]
    yield hello + b"\x17\x03\x03\x00\x02\x00\x00"


def test_compiled_and_python_agree_on_every_hello_and_its_damage(
    openssl_hellos: list[bytes],
) -> None:
    bases = _base_hellos(openssl_hellos)
    cases = list(bases)
    for hello in bases[:-300]:  # the seeded built ones: damaged below, fewer ways
        cases += _mutations(hello)
    cases += _damaged_cases(random.Random(9849), bases[-300:], per_hello=20)
    compiled = _compiled()
    _forget()
    expected = [_answer(tls._python_quick_hello, c) for c in cases]
    assert sum(info is not None for _, info in expected) > len(cases) // 4
    _forget()
    for attempt in ("nothing remembered", "everything remembered"):
        for case, want in zip(cases, expected, strict=True):
            assert _answer(compiled, case) == want, (attempt, case.hex())


def test_the_usual_hellos_are_read_in_c(
    openssl_hellos: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ECH, a whole one-record hello never reaches the Python reader."""
    usual = [
        h
        for h in [*_usual_hellos(), grease_client_hello(), *openssl_hellos]
        if (info := tls._python_quick_hello(h)) is not None
        and not (isinstance(info, tls.ClientHelloInfo) and info.ech is not None)
    ]
    assert len(usual) >= 15
    expected = [_answer(tls._python_quick_hello, h) for h in usual]

    def no_python(buf: bytes) -> None:
        raise AssertionError(f"deferred to Python: {buf.hex()}")

    monkeypatch.setattr(tls, "_python_quick_hello", no_python)
    compiled = _compiled()
    _forget()
    for _ in range(2):
        assert [_answer(compiled, h) for h in usual] == expected
        for payload in (b"", b"\x16\x03\x01", b"\x17\x03\x03\x00\x01\x00", usual[0][:-1]):
            assert compiled(payload) is None


def test_many_distinct_hellos_share_the_bounded_tables() -> None:
    """More distinct hellos than slots: each still reads as in Python, asked twice."""
    hellos = [
        _client(sni_extension(b"h%d.example" % i), suites=_u16s([0x1301, i])) for i in range(3000)
    ]
    hellos += [_server(extension(VERSIONS, struct.pack("!H", i))) for i in range(1000)]
    compiled = _compiled()
    _forget()
    expected = [_answer(tls._python_quick_hello, h) for h in hellos]
    for _ in range(2):
        assert [_answer(compiled, h) for h in hellos] == expected


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_other_buffers_are_read_by_python(kind: Callable[[bytes], bytes]) -> None:
    hello = captured("tls13_client_hello")
    assert _compiled()(kind(hello)) == tls._python_quick_hello(hello) is not None


def test_quick_hello_is_the_compiled_one() -> None:
    assert tls.quick_hello is _compiled()
