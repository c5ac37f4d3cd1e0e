"""observe.parallel: files read on several processes (or Dask workers) and merged give the record
that reading them one after another gives; the report says who read which file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.errors import CaptureError, ConformanceError
from conformance.observe.builder import observe_captures
from conformance.observe.merge import merge_all
from conformance.observe.parallel import (
    LocalExecutor,
    SerialExecutor,
    check_executor,
    executor_for,
    observe_files,
)
from tests import defects


def rotated_files(tmp_path: Path, count: int = 4) -> list[Path]:
    """A capture cut into `count` consecutive files, as a rotating capture writes them."""
    packets = defects._Clock().stamp(
        [p for name in ("tcp_leak", "udp_leak", "ipv6_leak") for p in getattr(defects, name)()]
    )
    size = -(-len(packets) // count)
    return [
        defects.write_pcap(tmp_path / f"ring_{i:05d}.pcap", packets[i * size : (i + 1) * size])
        for i in range(count)
    ]


def test_a_local_pool_gives_what_reading_one_after_another_gives(tmp_path: Path) -> None:
    files = rotated_files(tmp_path)
    one_by_one = merge_all(observe_captures([f]) for f in files)
    serial, serial_judged = observe_files(files, SerialExecutor())
    pool = LocalExecutor(2)
    try:
        parallel, judged = observe_files(files, pool)
    finally:
        pool.close()
    assert serial == one_by_one
    assert parallel == one_by_one
    assert [j.capture for j in judged] == list(range(len(files)))
    assert {j.executor for j in judged} == {"local (2 processes)"}
    assert all(" pid " in j.worker for j in judged + serial_judged)


def test_one_file_is_read_in_this_process_and_several_on_every_core() -> None:
    assert executor_for(None, 1).in_process
    several = executor_for(None, 3)
    try:
        assert isinstance(several, LocalExecutor) and not several.in_process
    finally:
        several.close()


@pytest.mark.parametrize("spec", ["local:0", "local:x", "threads", "dask:/nohost"])
def test_an_executor_that_names_none_is_bad_usage(spec: str) -> None:
    with pytest.raises(ConformanceError, match="--executor"):
        check_executor(spec)


def test_an_unreadable_file_is_named_before_any_worker_starts(tmp_path: Path) -> None:
    files = rotated_files(tmp_path, 2)
    bad = tmp_path / "not-a-capture.pcap"
    bad.write_bytes(b"hello")
    with pytest.raises(CaptureError, match="not-a-capture"):
        observe_files([*files, bad], SerialExecutor())


@pytest.mark.slow
def test_a_dask_cluster_gives_the_same_record(tmp_path: Path) -> None:
    """Needs the extra [scale] (in the dev extra): skipped only when Dask is not installed."""
    distributed = pytest.importorskip("distributed", reason="Dask not installed (extra [scale])")
    files = rotated_files(tmp_path)
    one_by_one = merge_all(observe_captures([f]) for f in files)
    dask = pytest.importorskip("dask")
    scratch = {"temporary-directory": str(tmp_path)}  # not /tmp/dask-scratch-space, left behind
    with (
        dask.config.set(scratch),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
    ):
        executor = executor_for(f"dask://{cluster.scheduler_address}", len(files))
        try:
            merged, judged = observe_files(files, executor)
        finally:
            executor.close()
    assert merged == one_by_one
    assert all(j.executor.startswith("dask tcp://") for j in judged)
    assert all(j.worker.startswith("tcp://") for j in judged)


def test_the_report_says_who_read_each_capture(tmp_path: Path) -> None:
    from conformance.cli import main

    files = rotated_files(tmp_path, 3)
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        "name: parallel\nmode: air-gapped\ntarget:\n  addresses: [192.0.2.10]\n"
        "environment:\n  networks: [192.0.2.0/24]\n"
    )
    report = tmp_path / "report"
    assert main(["keygen", str(tmp_path / "key.pem")]) == 0
    args = ["run", "--profile", str(profile), "--report-dir", str(report)]
    args += ["--sign-key", str(tmp_path / "key.pem"), "--executor", "local:2"]
    for f in files:
        args += ["--pcap", str(f)]
    assert main(args) == 1  # the leaks fail AG-EGRESS
    document = json.loads((report / "report.json").read_text())
    judged = document["judged_by"]
    assert [j["capture"] for j in judged] == [f"evidence/capture-{i}.pcap" for i in range(3)]
    assert {j["executor"] for j in judged} == {"local (2 processes)"}


def test_run_with_several_captures_reads_them_on_every_core_and_judges_as_serial(
    tmp_path: Path,
) -> None:
    """`run --pcap a --pcap b --pcap c` without --executor uses the local pool; its report
    holds the same verdicts and tables as reading the files one after another."""
    from conformance.cli import main

    files = rotated_files(tmp_path, 3)
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        "name: parallel\nmode: air-gapped\ntarget:\n  addresses: [192.0.2.10]\n"
        "environment:\n  networks: [192.0.2.0/24]\n"
    )
    assert main(["keygen", str(tmp_path / "key.pem")]) == 0
    reports = {}
    for name, extra in (("default", []), ("serial", ["--executor", "serial"])):
        reports[name] = tmp_path / name
        args = ["run", "--profile", str(profile), "--report-dir", str(reports[name])]
        args += ["--sign-key", str(tmp_path / "key.pem"), *extra]
        for f in files:
            args += ["--pcap", str(f)]
        assert main(args) == 1
    documents = {k: json.loads((v / "report.json").read_text()) for k, v in reports.items()}
    assert all(j["executor"].startswith("local (") for j in documents["default"]["judged_by"])
    assert {j["executor"] for j in documents["serial"]["judged_by"]} == {"serial"}
    verdicts = {
        k: [(c["id"], c["verdict"], len(c["findings"])) for c in d["controls"]]
        for k, d in documents.items()
    }
    assert verdicts["default"] == verdicts["serial"]
    for table in ("flows.csv", "dns.csv", "tls.csv", "http.csv", "names.csv"):
        default = (reports["default"] / "evidence" / table).read_bytes()
        assert default == (reports["serial"] / "evidence" / table).read_bytes(), table


def test_dask_without_the_extra_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(ConformanceError, match=r"Dask is not installed \(pip install"):
        executor_for("dask://192.0.2.1:8786", 2)


def test_run_with_one_capture_in_parts_judges_as_one_pass(tmp_path: Path) -> None:
    """`run --pcap FILE --executor local:2`: the file is read in two parts (one forked); the
    report holds the same verdicts, tables and capture summary as one pass, and verifies."""
    from conformance.cli import main

    capture = rotated_files(tmp_path, 1)[0]
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        "name: parts\nmode: air-gapped\ntarget:\n  addresses: [192.0.2.10]\n"
        "environment:\n  networks: [192.0.2.0/24]\n"
    )
    assert main(["keygen", str(tmp_path / "key.pem")]) == 0
    reports = {}
    for name, executor in (("parts", "local:2"), ("serial", "serial")):
        reports[name] = tmp_path / name
        args = ["run", "--profile", str(profile), "--report-dir", str(reports[name])]
        args += ["--sign-key", str(tmp_path / "key.pem"), "--executor", executor]
        assert main([*args, "--pcap", str(capture)]) == 1
        assert main(["verify", str(reports[name]), "--key", str(tmp_path / "key.pem.pub")]) == 0
    documents = {k: json.loads((v / "report.json").read_text()) for k, v in reports.items()}
    assert [j["executor"] for j in documents["parts"]["judged_by"]] == ["local:2"]
    verdicts = {
        k: [(c["id"], c["verdict"], c["findings"]) for c in d["controls"]]
        for k, d in documents.items()
    }
    assert verdicts["parts"] == verdicts["serial"]
    for table in ("flows.csv", "dns.csv", "tls.csv", "http.csv", "names.csv", "captures.json"):
        parts = (reports["parts"] / "evidence" / table).read_bytes()
        assert parts == (reports["serial"] / "evidence" / table).read_bytes(), table
