"""Decision 5: findings say what platform traffic looks like."""

from __future__ import annotations

import pytest

from conformance.judge.platform import looks_like, name_looks_like, request_looks_like
from tests.defects import OUTSIDE, TARGET
from tests.judge.factory import Scenario


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("license.imagicle.com", "Imagicle cloud service"),
        ("ctldl.windowsupdate.com", "Windows certificate trust list update"),
        ("download.windowsupdate.com", "Windows Update"),
        ("crl.microsoft.com", "Windows certificate revocation fetch"),
        ("oneocsp.microsoft.com", "Windows certificate revocation check (OCSP)"),
        ("www.msftconnecttest.com", "Windows network connectivity probe (NCSI)"),
        ("dns.msftncsi.com", "Windows network connectivity probe (NCSI)"),
        ("time.windows.com", "Windows time sync (time.windows.com)"),
        ("connectivitycheck.gstatic.com", "connectivity probe (Android/ChromeOS style)"),
        ("0.pool.ntp.org", "public NTP time sync"),
        ("v10.events.data.microsoft.com", "Windows telemetry (Connected User Experiences)"),
        ("ocsp.digicert.com", "certificate revocation check (OCSP)"),
        ("crl3.digicert.com", "certificate revocation list (CRL) fetch"),
        ("WPAD", "WPAD proxy auto-discovery"),
        ("security.ubuntu.com", "Linux package updates"),
        ("cucm.corp.example", None),
        ("", None),
    ],
)
def test_name_labels(name: str, label: str | None) -> None:
    assert name_looks_like(name) == label


def test_request_labels() -> None:
    s = Scenario()
    flow = s.flow(TARGET, OUTSIDE, 80)
    crl = s.http(flow, "GET", "/some/ca.crl", "pki.example")
    aia = s.http(flow, "GET", "http://pki.example/ca.crt", None)
    ncsi = s.http(flow, "GET", "/connecttest.txt", "203.0.113.5")
    ocsp = s.http(flow, "GET", "/MFEwTzBNMEswSTAJBgUrDgMCGgUABBQ" + "A" * 20, "status.example")
    assert request_looks_like(crl) == "certificate revocation list (CRL) fetch"
    assert request_looks_like(aia) == "CA certificate fetch (AIA)"
    assert request_looks_like(ncsi) == "Windows network connectivity probe (NCSI)"
    assert request_looks_like(ocsp) == "certificate revocation check (OCSP)"


def test_flow_labels_prefer_names_then_requests_then_ports() -> None:
    s = Scenario()
    https = s.flow(TARGET, OUTSIDE, 443)
    ntp = s.flow(TARGET, OUTSIDE, 123, transport="udp", sport=123)
    dns = s.flow(TARGET, OUTSIDE, 53, transport="udp")
    odd = s.flow(TARGET, OUTSIDE, 40000, sport=40001)
    ping = s.flow(TARGET, OUTSIDE, 0, transport="icmp", sport=8)
    request = s.http(https, "GET", "/x.crl", None)
    assert looks_like(https) == "HTTPS"
    assert looks_like(https, ["time.windows.com"]) == "Windows time sync (time.windows.com)"
    assert looks_like(https, (), [request]) == "certificate revocation list (CRL) fetch"
    assert looks_like(ntp) == "NTP time sync"
    assert looks_like(dns) == "DNS query"
    assert looks_like(dns, ["license.imagicle.com"]) == "DNS query for: Imagicle cloud service"
    assert looks_like(odd) is None
    assert looks_like(ping) == "ping (ICMP echo)"
