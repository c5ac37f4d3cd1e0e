"""The bundled sample captures give the verdicts their documentation promises (make_samples.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from conformance.cli import main
from conformance.resources import captures_dir, profiles_dir
from conformance.sign.keys import generate_key

SAMPLE_PROFILE = "sample-air-gapped.yaml"
# Sample -> (exit status, controls that fail), as make_samples.py's docstring says.
EXPECTED = {
    "sample-air-gapped.pcapng": (0, set()),
    "sample-air-gapped-leak.pcapng": (1, {"AG-EGRESS", "AG-CLOUD-NAMES", "TM-AIRGAP"}),
}


def _make_samples() -> ModuleType:
    path = captures_dir() / "make_samples.py"
    spec = importlib.util.spec_from_file_location("make_samples_for_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_bundled_sample_gives_its_documented_verdict(
    sample: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key.pem"))
    key = generate_key(tmp_path / "keys" / "signer.pem")
    report = tmp_path / "report"
    code = main(
        [
            "run",
            "--profile",
            str(profiles_dir() / SAMPLE_PROFILE),
            "--pcap",
            str(captures_dir() / sample),
            "--report-dir",
            str(report),
            "--sign-key",
            str(key),
        ]
    )
    expected_code, expected_fails = EXPECTED[sample]
    data = json.loads((report / "report.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in data["controls"]}
    assert code == expected_code, verdicts
    assert {cid for cid, v in verdicts.items() if v == "fail"} == expected_fails
    # Nothing else is left unproven: a clean sample that is only "not failing" is not clean.
    assert not {cid for cid, v in verdicts.items() if v in ("inconclusive", "error")}
    captures = json.loads((report / "evidence" / "captures.json").read_text())["captures"]
    assert [(c["malformed"], c["anomalies"], c["complete"]) for c in captures] == [(0, [], True)]
    # The decoder read the report's copy back and left its hash to that copy (report.prestage):
    # the SHA-256 given is still the one of the file judged.
    digest = hashlib.sha256((captures_dir() / sample).read_bytes()).hexdigest()
    assert [c["sha256"] for c in captures] == [digest]
    assert (report / captures[0]["evidence"]).read_bytes() == (captures_dir() / sample).read_bytes()


def test_samples_are_rebuilt_byte_for_byte(tmp_path: Path) -> None:
    """make_samples.py is deterministic and the bundled files are what it writes."""
    _make_samples().main(tmp_path)
    for sample in EXPECTED:
        assert (tmp_path / sample).read_bytes() == (captures_dir() / sample).read_bytes(), sample
