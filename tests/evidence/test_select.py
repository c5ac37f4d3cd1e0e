"""build_source: each combination of run options gets its source, and every combination that
does not make sense is refused with one line naming the option (exit 3) before anything runs.
Every source's constructor only records what it was given (no lab, no engine, no host is
reached here): that is what lets these tests build them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.decode.keylog import KeyLogError
from conformance.errors import CaptureError, ConformanceError
from conformance.evidence import select
from conformance.evidence.docker import DockerSource
from conformance.evidence.host import HostSource
from conformance.evidence.lab import LabSource
from conformance.evidence.pcap import PcapSource
from conformance.evidence.report_copy import EVIDENCE, ReportEvidenceSource
from conformance.evidence.select import build_source
from conformance.options import RunOptions
from tests.defects import clean_onprem_traffic, write_pcap
from tests.evidence.secret_captures import broken_key_log, key_log

HOST = "ssh://admin@192.0.2.10"
IMAGE = "ucx-reference:test"
FAULT = "ipv6-leak"


@pytest.fixture
def pcap(tmp_path: Path) -> Path:
    return write_pcap(tmp_path / "site.pcap", clean_onprem_traffic())


@pytest.fixture
def copy_dir(tmp_path: Path) -> Path:
    """What `rejudge` hands the run (only its evidence/ matters here)."""
    (tmp_path / "copy" / EVIDENCE).mkdir(parents=True)
    return tmp_path / "copy"


# --- the source each combination gets --------------------------------------------------------


def test_captures_alone_are_a_pcap_source(pcap: Path, tmp_path: Path) -> None:
    second = write_pcap(tmp_path / "second.pcap", clean_onprem_traffic())
    source = build_source(RunOptions(pcaps=(pcap, second)))
    assert isinstance(source, PcapSource)
    assert source.given == (pcap, second)
    assert not source.checked.request.given


def test_key_logs_and_hars_go_with_the_captures(pcap: Path, tmp_path: Path) -> None:
    keys = key_log(tmp_path / "keys.txt")
    har = tmp_path / "proxy.har"
    options = RunOptions(pcaps=(pcap,), tls_keylogs=(keys,), content_logs=(har,), keep_secrets=True)
    source = build_source(options)
    assert isinstance(source, PcapSource)
    request = source.checked.request
    assert (request.keylogs, request.hars, request.keep_secrets) == ((keys,), (har,), True)
    assert len(source.checked.keylogs) == 1  # read now, before anything is judged


def test_the_lab_gets_its_faults_and_keep_secrets() -> None:
    source = build_source(RunOptions(lab=True, faults=(FAULT,), keep_secrets=True))
    assert isinstance(source, LabSource)
    assert source.faults == (FAULT,) and source.keep_secrets
    assert source.host_hook is None and source.external is None and source.workdir is None
    plain = build_source(RunOptions(lab=True))
    assert isinstance(plain, LabSource) and plain.faults == () and not plain.keep_secrets


@pytest.mark.parametrize("lab", [False, True], ids=["image", "image-and-lab"])
def test_an_image_is_a_docker_source(lab: bool) -> None:
    """The image runs inside the lab, so --lab beside it asks for nothing more."""
    options = RunOptions(
        image=IMAGE,
        lab=lab,
        env=("UCX_MODE=air-gapped", "EMPTY="),
        volumes=("/srv/licence:/etc/ucx/licence:ro", "/srv/data:/data"),
        faults=(FAULT,),
    )
    source = build_source(options)
    assert isinstance(source, DockerSource)
    assert source.image == IMAGE and source.faults == (FAULT,)
    assert source.env == {"UCX_MODE": "air-gapped", "EMPTY": ""}
    assert source.volumes == {
        "/srv/licence": {"bind": "/etc/ucx/licence", "mode": "ro"},
        "/srv/data": {"bind": "/data", "mode": "rw"},
    }


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("env", "--env 'NOVALUE': expected KEY=VALUE"),
        ("env", "--env '=x': expected KEY=VALUE"),
        ("volume", "--volume 'relative:/data': expected /HOST/PATH:/CONTAINER/PATH[:ro]"),
        ("volume", "--volume '/a:/b:rx': mode must be ro or rw"),
    ],
)
def test_a_bad_env_or_volume_is_refused_naming_it(item: str, words: str) -> None:
    value = re.search(r"'(.*)'", words)
    assert value is not None
    options = (
        RunOptions(image=IMAGE, env=(value[1],))
        if item == "env"
        else RunOptions(image=IMAGE, volumes=(value[1],))
    )
    with pytest.raises(ConformanceError) as error:
        build_source(options)
    assert str(error.value) == words


def test_a_host_alone_is_a_host_source() -> None:
    source = build_source(RunOptions(host=HOST))
    assert isinstance(source, HostSource)
    assert source.host == HOST and source.inner is None


@pytest.mark.parametrize("inner", ["pcap", "lab", "image"])
def test_a_host_wraps_the_other_source(inner: str, pcap: Path) -> None:
    options = {
        "pcap": RunOptions(host=HOST, pcaps=(pcap,)),
        "lab": RunOptions(host=HOST, lab=True, faults=(FAULT,)),
        "image": RunOptions(host=HOST, image=IMAGE),
    }[inner]
    source = build_source(options)
    assert isinstance(source, HostSource) and source.host == HOST
    expected = {"pcap": PcapSource, "lab": LabSource, "image": DockerSource}[inner]
    assert type(source.inner) is expected


def test_a_rejudge_copy_is_a_report_source(copy_dir: Path) -> None:
    source = build_source(RunOptions(evidence_dir=copy_dir))
    assert isinstance(source, ReportEvidenceSource) and source.directory == copy_dir


def test_a_directory_that_is_no_rejudge_copy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no evidence/ directory"):
        build_source(RunOptions(evidence_dir=tmp_path))


# --- conflicts: one line, naming the option --------------------------------------------------

_PCAPS = (Path("a.pcap"),)
_KEYS = (Path("keys.txt"),)
_COPY = Path("copy")
_NONE = "no evidence"
_ALONE = "judges a report's evidence alone"
_EXPLAIN = "explain --pcap captures"
_KEPT = "judged as it was kept"
_CONFLICTS: dict[str, tuple[str, str, RunOptions]] = {
    "nothing": ("--pcap", _NONE, RunOptions()),
    "profile-only": ("--pcap", _NONE, RunOptions(profile=Path("p.yaml"))),
    "secrets-only": ("--pcap", _NONE, RunOptions(keep_secrets=True)),
    "faults-only": ("--pcap", _NONE, RunOptions(faults=(FAULT,))),
    "lab-and-pcap": ("--pcap", "either --lab or --pcap", RunOptions(lab=True, pcaps=_PCAPS)),
    "image-and-pcap": ("--image", "--pcap, not both", RunOptions(image=IMAGE, pcaps=_PCAPS)),
    "env-with-lab": ("--env", "only to --image", RunOptions(lab=True, env=("A=1",))),
    "env-with-pcap": ("--env", "only to --image", RunOptions(pcaps=_PCAPS, env=("A=1",))),
    "volume-with-host": ("--env", "only to --image", RunOptions(host=HOST, volumes=("/a:/b",))),
    "fault-with-pcap": (
        "--fault",
        "only in the lab",
        RunOptions(pcaps=_PCAPS, faults=(FAULT,)),
    ),
    "fault-with-host": ("--fault", "only in the lab", RunOptions(host=HOST, faults=(FAULT,))),
    "keylog-with-lab": ("--tls-keylog", _EXPLAIN, RunOptions(lab=True, tls_keylogs=_KEYS)),
    "keylog-with-image": ("--tls-keylog", _EXPLAIN, RunOptions(image=IMAGE, tls_keylogs=_KEYS)),
    "har-with-host": ("--tls-keylog", _EXPLAIN, RunOptions(host=HOST, content_logs=_KEYS)),
    "copy-and-pcap": ("--evidence-dir", _ALONE, RunOptions(evidence_dir=_COPY, pcaps=_PCAPS)),
    "copy-and-lab": ("--evidence-dir", _ALONE, RunOptions(evidence_dir=_COPY, lab=True)),
    "copy-and-image": ("--evidence-dir", _ALONE, RunOptions(evidence_dir=_COPY, image=IMAGE)),
    "copy-and-host": ("--evidence-dir", _ALONE, RunOptions(evidence_dir=_COPY, host=HOST)),
    "copy-with-fault": (
        "--evidence-dir",
        _KEPT,
        RunOptions(evidence_dir=_COPY, faults=(FAULT,)),
    ),
    "copy-with-env": ("--evidence-dir", _KEPT, RunOptions(evidence_dir=_COPY, env=("A=1",))),
    "copy-with-keylog": (
        "--evidence-dir",
        _KEPT,
        RunOptions(evidence_dir=_COPY, tls_keylogs=_KEYS),
    ),
    "copy-with-har": (
        "--evidence-dir",
        _KEPT,
        RunOptions(evidence_dir=_COPY, content_logs=_KEYS),
    ),
    "copy-keeping-secrets": (
        "--evidence-dir",
        _KEPT,
        RunOptions(evidence_dir=_COPY, keep_secrets=True),
    ),
}


@pytest.mark.parametrize(("flag", "words", "options"), _CONFLICTS.values(), ids=_CONFLICTS.keys())
def test_a_conflict_is_refused_naming_the_option(
    flag: str, words: str, options: RunOptions
) -> None:
    with pytest.raises(CaptureError) as error:
        build_source(options)
    message = str(error.value)
    assert message.startswith(f"{flag}: ") and words in message
    assert "\n" not in message


def test_every_option_select_can_refuse_has_a_conflict_above() -> None:
    """A new refusal in select.py needs its case here."""
    refused = set(re.findall(r'CaptureError\(\s*"(--[a-z-]+)"', Path(select.__file__).read_text()))
    assert refused == {flag for flag, _, _ in _CONFLICTS.values()}


def test_conflicts_are_found_before_any_file_is_read(tmp_path: Path) -> None:
    """A missing capture beside --lab names the conflict, not the file."""
    with pytest.raises(CaptureError, match=r"^--pcap: use either --lab or --pcap"):
        build_source(RunOptions(lab=True, pcaps=(tmp_path / "absent.pcap",)))


def test_a_capture_that_cannot_be_read_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pcap"
    with pytest.raises(CaptureError) as error:
        build_source(RunOptions(pcaps=(missing,)))
    assert str(error.value) == f"{missing}: no such file"


def test_a_bad_key_log_is_refused_before_anything_is_judged(pcap: Path, tmp_path: Path) -> None:
    bad = broken_key_log(tmp_path / "keys.txt")
    with pytest.raises(KeyLogError, match=rf"^{bad}:2: "):
        build_source(RunOptions(pcaps=(pcap,), tls_keylogs=(bad,)))
