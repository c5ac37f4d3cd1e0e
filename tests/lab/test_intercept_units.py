"""The interceptor's pieces that need no namespace: options, the upstream allow-list, the CA
file handed to mitmproxy, the recorder's lines."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from conformance.errors import ProfileError
from conformance.lab.certs import LabCA
from conformance.lab.intercept import Recorder, _allowed
from conformance.lab.options import lab_options
from tests.lab.conftest import lab_profile


def test_intercept_defaults_to_on_with_a_proxy_and_a_valid_cloud_certificate() -> None:
    assert lab_options(lab_profile("lab-proxy")).intercept
    assert not lab_options(lab_profile("lab-hybrid")).intercept
    untrusted = lab_profile("lab-proxy", lab={"cloud_cert": "untrusted"})
    assert not lab_options(untrusted).intercept  # it would stand in for the impostor
    assert not lab_options(lab_profile("lab-proxy", lab={"intercept": False})).intercept


def test_intercept_without_a_proxy_is_a_profile_error() -> None:
    with pytest.raises(ProfileError, match=r"lab\.intercept"):
        lab_options(lab_profile("lab-hybrid", lab={"intercept": True}))
    with pytest.raises(ProfileError, match=r"lab\.intercept"):
        lab_options(lab_profile("lab-proxy", lab={"intercept": "yes"}))


def test_upstream_allow_list() -> None:
    names = frozenset({"api.imagicle.com"})
    assert _allowed("API.imagicle.com.", names)
    assert _allowed("203.0.113.10", names) and _allowed("2001:db8:ffff::10", names)
    assert not _allowed("api.imagicle.com.evil.example", names)
    assert not _allowed("8.8.8.8", names) and not _allowed("www.example.com", names)


def test_ca_file_for_mitmproxy_holds_key_then_certificate(tmp_path: Path) -> None:
    ca = LabCA(tmp_path / "pki")
    path = ca.export_for_interceptor(tmp_path / "pki" / "mitm" / "mitmproxy-ca.pem")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = load_pem_private_key(data, None)
    cert = x509.load_pem_x509_certificate(data[data.index(b"-----BEGIN CERTIFICATE-----") :])
    assert cert.public_key() == key.public_key()
    assert cert.public_bytes(Encoding.PEM) in ca.ca_file.read_bytes()


def test_recorder_refuses_upstreams_outside_the_lab(tmp_path: Path) -> None:
    log = tmp_path / "decrypted.jsonl"
    recorder = Recorder(log, frozenset({"api.imagicle.com"}))
    outside = SimpleNamespace(server=SimpleNamespace(address=("www.example.com", 443), error=None))
    inside = SimpleNamespace(server=SimpleNamespace(address=("api.imagicle.com", 443), error=None))
    recorder.server_connect(outside)
    recorder.server_connect(inside)
    assert outside.server.error and inside.server.error is None
    (line,) = [json.loads(x) for x in log.read_text().splitlines()]
    assert line["event"] == "refused-upstream" and line["host"] == "www.example.com"
    recorder.file.close()
