"""The customer's TLS secrets checked before judging: key logs read, every capture's DSBs
found in capture order, and a capture with keys judged from a copy without them unless the
user keeps secrets (keys never enter a report by accident)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from conformance.decode import keylog as tls_keylog
from conformance.decode.keylog import KeyLogError, pcapng_secrets
from conformance.evidence.interface import SecretInputs
from conformance.evidence.secrets import check_secrets, judged_captures
from tests.defects import clean_onprem_traffic, write_pcap
from tests.evidence.secret_captures import (
    CLIENT_RANDOM,
    broken_key_log,
    capture_with_keys,
    capture_without_keys,
    key_log,
)


def test_key_logs_are_read_and_each_capture_has_its_blocks_in_order(tmp_path: Path) -> None:
    keys = key_log(tmp_path / "keys.txt")
    pcap = write_pcap(tmp_path / "a.pcap", clean_onprem_traffic())
    with_keys = capture_with_keys(tmp_path / "b.pcapng")
    plain = capture_without_keys(tmp_path / "c.pcapng")
    checked = check_secrets(SecretInputs(keylogs=(keys,)), [pcap, with_keys, plain])
    (log,) = checked.keylogs
    assert CLIENT_RANDOM in log.labels
    assert [s.path for s in checked.secrets] == [pcap, with_keys, plain]
    assert [len(s.blocks) for s in checked.secrets] == [0, 1, 0]
    assert checked.secrets[1].keylogs[0].labels == log.labels
    assert checked.decrypts


def test_nothing_to_decrypt_with_without_key_logs_or_blocks(tmp_path: Path) -> None:
    plain = capture_without_keys(tmp_path / "c.pcapng")
    checked = check_secrets(SecretInputs(), [plain])
    assert checked.keylogs == () and not checked.decrypts


def test_keys_inside_a_capture_decrypt_without_a_key_log(tmp_path: Path) -> None:
    checked = check_secrets(SecretInputs(), [capture_with_keys(tmp_path / "b.pcapng")])
    assert checked.keylogs == () and checked.decrypts


def test_a_bad_key_log_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    bad = broken_key_log(tmp_path / "keys.txt")
    with pytest.raises(KeyLogError, match=rf"^{tmp_path}/keys\.txt:2: ") as caught:
        check_secrets(SecretInputs(keylogs=(bad,)), [])
    assert "\n" not in str(caught.value)


def test_a_missing_key_log_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(KeyLogError, match="no such file"):
        check_secrets(SecretInputs(keylogs=(tmp_path / "absent.txt",)), [])


@pytest.mark.parametrize("given", [False, True])
def test_large_captures_are_walked_whole_only_when_the_user_gives_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: bool
) -> None:
    """The walk past the first packet costs time: only done when secrets are in play."""
    monkeypatch.setattr(tls_keylog, "FULL_SCAN_BYTES", 64)  # the capture counts as large
    late = capture_with_keys(tmp_path / "late.pcapng", after_first_packet=True)
    request = SecretInputs(keylogs=(key_log(tmp_path / "k.txt"),)) if given else SecretInputs()
    (found,) = check_secrets(request, [late]).secrets
    assert len(found.blocks) == (1 if given else 0)


def test_a_capture_with_keys_is_judged_from_a_copy_without_them(tmp_path: Path) -> None:
    plain = capture_without_keys(tmp_path / "plain.pcapng")
    with_keys = capture_with_keys(tmp_path / "keys.pcapng")
    pcap = write_pcap(tmp_path / "a.pcap", clean_onprem_traffic())
    checked = check_secrets(SecretInputs(), [pcap, with_keys, plain])
    work = tmp_path / "work"
    judged = judged_captures(checked, [pcap, with_keys, plain], work)
    assert judged[0] == pcap and judged[2] == plain  # nothing to remove: used as given
    copy = judged[1]
    assert copy.parent == work and copy.name == "1-keys-no-secrets.pcapng"
    assert copy.read_bytes() == plain.read_bytes()  # the same frames, not a byte of key
    assert pcapng_secrets(copy).blocks == ()
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert with_keys.read_bytes() != plain.read_bytes()  # the user's file is untouched


def test_no_work_directory_when_no_capture_carries_keys(tmp_path: Path) -> None:
    plain = capture_without_keys(tmp_path / "plain.pcapng")
    checked = check_secrets(SecretInputs(), [plain])
    assert judged_captures(checked, [plain], tmp_path / "work") == [plain]
    assert not (tmp_path / "work").exists()


def test_kept_secrets_keep_the_capture_as_given(tmp_path: Path) -> None:
    with_keys = capture_with_keys(tmp_path / "keys.pcapng")
    checked = check_secrets(SecretInputs(keep_secrets=True), [with_keys])
    assert judged_captures(checked, [with_keys], tmp_path / "work") == [with_keys]
    assert not (tmp_path / "work").exists()
