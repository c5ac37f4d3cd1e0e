"""Table-shaped facts (per endpoint, per connection) render as escaped HTML tables."""

from __future__ import annotations

from conformance.report import html_report
from tests.report.test_html_report import Structure


def render(facts: dict[str, object]) -> tuple[str, Structure]:
    page = html_report._facts(facts)
    structure = Structure()
    structure.feed(page)
    structure.close()
    assert structure.stack == []
    return page, structure


def test_per_endpoint_facts_are_a_table_with_a_row_per_endpoint() -> None:
    page, structure = render(
        {
            "endpoints": {
                "api.imagicle.com:443": {"version": "TLS 1.3", "suite": "TLS_AES_256_GCM_SHA384"},
                "ldaps.imagicle.cloud:636": {"version": "TLS 1.2", "sni": "<b>x</b>"},
                "grpc.imagicle.com:443": {"versions": ["TLS 1.2", "TLS 1.3"]},
            },
            "external_flows": 3,
        }
    )
    assert [t for t, _ in structure.tags].count("tr") == 4  # head + one per endpoint
    assert "<td>TLS 1.2, TLS 1.3</td>" in page
    assert "<th>api.imagicle.com:443</th>" in page and "<td>TLS 1.3</td>" in page
    assert "<th>sni</th>" in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>" not in page
    assert "<dd>3</dd>" in page


def test_a_list_of_records_is_a_table_and_a_flat_mapping_is_a_key_value_table() -> None:
    page, structure = render(
        {
            "connections": [{"kind": "expired", "bytes": 0}, {"kind": "self-signed"}],
            "plain": {"a_key": 1},
            "empty": [],
        }
    )
    assert [t for t, _ in structure.tags].count("table") == 2
    assert "<td>expired</td>" in page and "<td></td>" in page  # a missing column is empty
    # Auditors read keys, not JSON: {"a_key": 1} is a row "a key | 1".
    assert "<th>a key</th><td>1</td>" in page and "&quot;" not in page


def test_lists_read_as_lists_not_json() -> None:
    page, _ = render(
        {
            "endpoints_used": ["cucm", "dns"],
            "incomplete": ["2 packets could not be decoded: a leak could hide in them"],
            "reasons": ["a reason long enough to need its own line of text", "and another one"],
        }
    )
    assert "<dd>cucm, dns</dd>" in page
    assert "<dd>2 packets could not be decoded: a leak could hide in them</dd>" in page
    assert "<li>and another one</li>" in page
    assert "[" not in page
