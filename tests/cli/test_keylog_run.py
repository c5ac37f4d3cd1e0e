"""`ucx-conformance run --pcap ... --tls-keylog / --content-log / --keep-secrets` end to end:
the keys never enter the report unless asked (then only inside a pcapng DSB that tshark opens
decrypted), the report records their SHA-256, a bad key log is exit 3 naming file:line, a DSB
pcapng is judged and copied without its secrets, and the signed report verifies."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.decode.keylog import pcapng_secrets
from tests.content.beats import beat
from tests.content.own_captures import PROFILES, site


def run_cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def report_of(report: Path) -> tuple[dict[str, dict[str, object]], list[str]]:
    data = json.loads((report / "report.json").read_text())
    return {c["id"]: c for c in data["controls"]}, list(data.get("notes") or [])


def secrets_of(keylog: Path) -> list[bytes]:
    """Every secret (third field) of a key log, as hex text and as bytes."""
    out = []
    for line in keylog.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3 and not line.startswith("#"):
            out += [fields[2].encode(), bytes.fromhex(fields[2])]
    return out


def files_holding(report: Path, needles: list[bytes]) -> list[str]:
    return [
        str(p.relative_to(report))
        for p in report.rglob("*")
        if p.is_file() and any(n in p.read_bytes() for n in needles)
    ]


def test_keys_decrypt_and_never_enter_the_report(tmp_path: Path, sign_key: Path) -> None:
    built = site(tmp_path, [beat("pii-in-telemetry")], h2_beats=True)
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        PROFILES / "lab-hybrid.yaml",
        "--pcap",
        built.capture,
        "--tls-keylog",
        built.keylog,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 1
    controls, notes = report_of(report)
    minimal = controls["TM-MINIMAL"]
    assert minimal["verdict"] == "fail"
    findings = minimal["findings"]
    assert isinstance(findings, list)
    assert str(findings[0]["evidence"]).startswith("evidence/content/tls-decrypted.jsonl#L")
    assert controls["TM-CHANNEL"]["verdict"] == "pass"
    digest = hashlib.sha256(built.keylog.read_bytes()).hexdigest()
    assert any(digest in n and "not copied into this report" in n for n in notes)
    assert files_holding(report, secrets_of(built.keylog)) == []
    assert files_holding(report, [b"mario.rossi@example.com"]) == []
    assert (report / "evidence" / "content" / "tls-decrypted.jsonl").is_file()
    assert not (report / "evidence" / "secrets").exists()
    assert run_cli("verify", report, "--key", f"{sign_key}.pub") == 0


def test_keep_secrets_keeps_a_pcapng_wireshark_opens_decrypted(
    tmp_path: Path, sign_key: Path
) -> None:
    built = site(tmp_path, [beat()])
    unrelated = "CLIENT_RANDOM " + "77" * 32 + " " + "88" * 48 + "\n"
    with built.keylog.open("a") as keys:
        keys.write(unrelated)  # another program's session: not kept
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        PROFILES / "lab-hybrid.yaml",
        "--pcap",
        built.capture,
        "--tls-keylog",
        built.keylog,
        "--keep-secrets",
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code in (0, 2)
    kept = report / "evidence" / "secrets" / "capture-0-keys.pcapng"
    (log,) = pcapng_secrets(kept).keylogs
    assert len(log.labels) == 3 and "77" * 32 not in log.labels  # the capture's sessions only
    shown = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(kept),
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.uri",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown == ["/v1/licensing/poll", "/v1/telemetry/beat"]  # HTTP/2 presence aside
    assert run_cli("verify", report, "--key", f"{sign_key}.pub") == 0


def test_a_dsb_pcapng_is_judged_and_copied_without_its_secrets(
    tmp_path: Path, sign_key: Path
) -> None:
    built = site(tmp_path, [beat("undocumented-telemetry-field")])
    capture = built.with_secrets(tmp_path / "given.pcapng")
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        PROFILES / "lab-hybrid.yaml",
        "--pcap",
        capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 1
    controls, notes = report_of(report)
    assert controls["TM-MINIMAL"]["verdict"] == "fail"
    copy = report / "evidence" / "capture-0.pcapng"
    assert pcapng_secrets(copy).blocks == () and pcapng_secrets(capture).blocks
    assert files_holding(report, secrets_of(built.keylog)) == []
    assert any("removed from the report's copy" in n for n in notes)
    assert run_cli("verify", report, "--key", f"{sign_key}.pub") == 0


def test_a_har_is_content_evidence_and_is_not_copied(tmp_path: Path, sign_key: Path) -> None:
    built = site(tmp_path, [beat("pii-in-telemetry")])
    har = built.har(tmp_path / "proxy.har")
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        PROFILES / "lab-hybrid.yaml",
        "--pcap",
        built.capture,
        "--content-log",
        har,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 1
    controls, notes = report_of(report)
    assert controls["TM-MINIMAL"]["verdict"] == "fail"
    assert (report / "evidence" / "content" / "har-messages.jsonl").is_file()
    assert files_holding(report, [b"mario.rossi@example.com"]) == []
    digest = hashlib.sha256(har.read_bytes()).hexdigest()
    assert any(digest in n for n in notes)


def test_a_bad_key_log_exits_3_naming_file_and_line(
    tmp_path: Path, sign_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = site(tmp_path)
    bad = tmp_path / "keys.txt"
    bad.write_text(built.keylog.read_text() + "CLIENT_RANDOM 00 11\n")
    lines = len(bad.read_text().splitlines())
    code = run_cli(
        "run",
        "--profile",
        PROFILES / "lab-hybrid.yaml",
        "--pcap",
        built.capture,
        "--tls-keylog",
        bad,
        "--report-dir",
        tmp_path / "report",
        "--sign-key",
        sign_key,
    )
    assert code == 3
    err = capsys.readouterr().err
    assert f"{bad}:{lines}:" in err and "64 hex digits" in err
    assert not (tmp_path / "report").exists()


def test_keys_without_a_capture_is_bad_usage(tmp_path: Path, sign_key: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("")
    code = run_cli(
        "run",
        "--profile",
        PROFILES / "lab-hybrid.yaml",
        "--lab",
        "--tls-keylog",
        keys,
        "--sign-key",
        sign_key,
    )
    assert code == 3
