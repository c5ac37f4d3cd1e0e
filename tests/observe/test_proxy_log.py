"""squid access.log lines read as records; unreadable lines counted."""

from __future__ import annotations

from pathlib import Path

from conformance.observe.proxy_log import read_access_log


def test_native_format_lines(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text(
        "1795417103.688    107 192.0.2.10 TCP_TUNNEL/200 1507 CONNECT ldaps.imagicle.cloud:636"
        " - FIRSTUP_PARENT/192.0.2.80 -\n"
        "garbage\n\n"
    )
    entries, bad = read_access_log(path)
    (entry,) = entries
    assert (entry.client, entry.action, entry.status) == ("192.0.2.10", "TCP_TUNNEL", 200)
    assert (entry.method, entry.url, entry.line) == ("CONNECT", "ldaps.imagicle.cloud:636", 1)
    assert bad == [2]
