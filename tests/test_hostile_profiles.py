"""Hostile profiles: every mistake or attack is a one-line ProfileError (exit 3), never a
traceback, a hang, or a profile that allows more than it says."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.errors import ProfileError
from conformance.profile import load_profile

HEAD = """\
name: s
mode: air-gapped
target:
  addresses: [192.0.2.10]
"""
ENVIRONMENT = "environment:\n  networks: [192.0.2.0/24]\n"
HYBRID = """\
name: s
mode: hybrid
target:
  addresses: [192.0.2.10]
environment:
  networks: [192.0.2.0/24, "2001:db8:1::/64", "fe80::/64"]
telemetry: disabled
"""


def refused(tmp_path: Path, text: str) -> ProfileError:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert "\n" not in str(caught.value)
    return caught.value


# --- the file itself ------------------------------------------------------------------------


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_profile(fifo)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the open() so the thread ends, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("loading a FIFO with no writer hangs")
    assert isinstance(outcome[0], ProfileError)
    assert "not a regular file" in outcome[0].problem


def test_the_bytes_judged_are_kept_for_the_evidence_copy(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + ENVIRONMENT)
    profile = load_profile(path)
    path.write_text(HEAD + "environment:\n  networks: [0.0.0.0/0]\n")  # changed after loading
    assert profile.loaded == (HEAD + ENVIRONMENT).encode()


# --- values a YAML constructor cannot build ---------------------------------------------------


@pytest.mark.parametrize(
    "value", ["2024-13-45", "!!float abc", "!!int abc", "!!bool maybe", "!!timestamp nope"]
)
def test_a_value_no_constructor_can_build_is_one_line(tmp_path: Path, value: str) -> None:
    error = refused(tmp_path, f"name: {value}\nmode: air-gapped\n")
    assert error.key == "line 1, column 7"
    assert "not valid YAML" in error.problem


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (HEAD + ENVIRONMENT + "window: " + "9" * 5000 + "\n", "window"),
        (HEAD + ENVIRONMENT + "window: 0x" + "F" * 5000 + "\n", "window"),
        (HEAD + ENVIRONMENT + "window: 1" + "0" * 400 + "\n", "window"),
        (HEAD + ENVIRONMENT + "observation: {minimum_window: 1" + "0" * 400 + "}\n",
         "observation.minimum_window"),
        (HEAD + ENVIRONMENT + "lab: {periods: {sip: 1" + "0" * 400 + "}}\n", "lab.periods.sip"),
        (HEAD + ENVIRONMENT + "stimuli: [{at: 1" + "0" * 400 + ", action: restart}]\n",
         "stimuli[0].at"),
        (HEAD + ENVIRONMENT + "  endpoints: [{name: x, address: 192.0.2.5, ports: [0x"
         + "F" * 5000 + "]}]\n", "environment.endpoints[0].ports[0]"),
    ],
)  # fmt: skip
def test_a_huge_number_is_refused_at_its_key(tmp_path: Path, text: str, key: str) -> None:
    error = refused(tmp_path, text)
    assert error.key == key
    assert len(str(error)) < 300


def test_a_port_of_5000_digits_is_out_of_range(tmp_path: Path) -> None:
    endpoint = "  endpoints: [{name: x, address: 192.0.2.5, ports: ['" + "9" * 5000 + "/tcp']}]\n"
    error = refused(tmp_path, HEAD + ENVIRONMENT + endpoint)
    assert error.key == "environment.endpoints[0].ports[0]"
    assert "out of range" in error.problem
    assert len(str(error)) < 300


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("lab: {periods: {sip: .nan}}\n", "lab.periods.sip"),
        ("lab: {periods: {sip: .inf}}\n", "lab.periods.sip"),
        ("stimuli: [{at: .nan, action: restart}]\n", "stimuli[0].at"),
        ("stimuli: [{at: .inf, action: restart}]\n", "stimuli[0].at"),
        ("window: .nan\n", "window"),
        ("window: '" + "9" * 400 + "s'\n", "window"),
    ],
)
def test_a_number_that_is_not_finite_is_refused(tmp_path: Path, extra: str, key: str) -> None:
    error = refused(tmp_path, HEAD + ENVIRONMENT + extra)
    assert error.key == key


# --- merge keys: one key, one place ---------------------------------------------------------


def test_two_merge_keys_in_one_mapping_are_duplicates(tmp_path: Path) -> None:
    text = HEAD + (
        "environment:\n  <<: {networks: [0.0.0.0/0]}\n  <<: {networks: [192.0.2.0/24]}\n"
    )
    error = refused(tmp_path, text)
    assert error.key == 'environment."<<"'
    assert "duplicate key" in error.problem


def test_a_key_two_merged_mappings_bring_is_refused(tmp_path: Path) -> None:
    # PyYAML kept 0.0.0.0/0 here: every address on-prem, from a line that lists both.
    text = HEAD + "environment:\n  <<: [{networks: [192.0.2.0/24]}, {networks: [0.0.0.0/0]}]\n"
    error = refused(tmp_path, text)
    assert error.key == "environment.networks"
    assert "merged (<<) from two mappings" in error.problem


def test_a_key_written_over_a_merge_is_the_one_written(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        HEAD + "environment:\n  <<: {networks: [0.0.0.0/0]}\n  networks: [192.0.2.0/24]\n"
    )
    assert [str(n) for n in load_profile(path).environment.networks] == ["192.0.2.0/24"]


# --- addresses in a spelling packets never carry -----------------------------------------------


@pytest.mark.parametrize(
    ("network", "meant"),
    [
        ("::ffff:0:0/96", "write 0.0.0.0/0"),
        ("::ffff:198.51.100.0/120", "write 198.51.100.0/24"),
        ("::ffff:192.0.2.10", "write 192.0.2.10/32"),
    ],
)
def test_an_ipv4_mapped_network_is_refused(tmp_path: Path, network: str, meant: str) -> None:
    text = HEAD + f'environment:\n  networks: [192.0.2.0/24, "{network}"]\n'
    error = refused(tmp_path, text)
    assert error.key == "environment.networks[1]"
    assert meant in error.problem


@pytest.mark.parametrize(
    ("proxy", "words"),
    [
        ("[fe80::1%eth0]:3128", "zone index"),
        ("[::ffff:192.0.2.80]:3128", "IPv4-mapped; write 192.0.2.80"),
        ("[192.0.2.80]:3128", "write 192.0.2.80:3128"),
    ],
)
def test_a_proxy_address_follows_the_address_rules(tmp_path: Path, proxy: str, words: str) -> None:
    error = refused(tmp_path, HYBRID + f'proxy: "{proxy}"\n')
    assert error.key == "proxy"
    assert words in error.problem


# --- through the command line: one line, exit 3 --------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "name: 2024-13-45\nmode: air-gapped\n",
        HEAD + ENVIRONMENT + "window: " + "9" * 5000 + "\n",
        HEAD + ENVIRONMENT + "window: 1" + "0" * 400 + "\n",
    ],
)
def test_profile_check_says_one_line_and_exits_3(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert main(["profile", "check", str(path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert str(path) in err
