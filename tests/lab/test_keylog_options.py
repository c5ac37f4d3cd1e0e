"""`lab: {tls_keylog: true}`: parsed, checked, and handed to the reference target, whose TLS
contexts then write the NSS key log (no lab needed: the target's own code, over memory BIOs)."""

from __future__ import annotations

import contextlib
import importlib.util
import ssl
from pathlib import Path
from types import ModuleType

import pytest

from conformance.decode.keylog import read_keylog
from conformance.errors import ProfileError
from conformance.lab.options import lab_options
from conformance.lab.run import _target_config
from tests.lab.conftest import lab_profile
from tests.tls_sessions import SessionFactory

TARGET = Path(__file__).resolve().parents[2] / "fixtures" / "lab" / "target" / "ucx_target.py"


def _target_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ucx_target_keylog", TARGET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_option_is_off_by_default_and_checked() -> None:
    assert not lab_options(lab_profile("lab-hybrid")).tls_keylog
    assert lab_options(lab_profile("lab-hybrid", lab={"tls_keylog": True})).tls_keylog
    with pytest.raises(ProfileError, match=r"lab\.tls_keylog: expected true or false"):
        lab_options(lab_profile("lab-hybrid", lab={"tls_keylog": "yes"}))


def test_the_target_config_names_the_key_log(tmp_path: Path) -> None:
    profile = lab_profile("lab-hybrid", lab={"tls_keylog": True})
    options = lab_options(profile)
    keys = tmp_path / "keys.log"
    config = _target_config(profile, (), options, tmp_path / "ca.pem", tmp_path / "l", keys)
    assert config["tls_keylog"] == str(keys)
    assert (
        _target_config(profile, (), options, tmp_path / "ca.pem", tmp_path / "l")["tls_keylog"]
        is None
    )


def test_the_reference_target_writes_its_key_log(tmp_path: Path) -> None:
    sessions = SessionFactory(tmp_path)  # a lab CA and a server certificate for the handshake
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pair = sessions.ca.issue("api", ("api.imagicle.com",))
    server.load_cert_chain(pair.chain, pair.key)
    module = _target_module()
    target = module.Target.__new__(module.Target)  # no config file, no threads: its TLS only
    keys = tmp_path / "target-keys.log"
    target.cfg, target.faults, target.keylog = (
        {"ca_file": str(sessions.ca.ca_file)},
        set(),
        str(keys),
    )
    client = target.tls_context()
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    one = client.wrap_bio(c_in, c_out, server_hostname="api.imagicle.com")
    other = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(6):
        for end in (one, other):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    assert read_keylog(keys).tls13_sessions == 1
