"""sslyze and mitmproxy load under pytest's filterwarnings=error (pyproject.toml names the
precise third-party warnings it ignores: a new one fails here, not deep inside a lab test)."""

from __future__ import annotations

import asyncio


def test_sslyze_trust_stores_load() -> None:
    from sslyze.plugins.certificate_info.trust_stores.trust_store_repository import (
        TrustStoresRepository,
    )

    assert TrustStoresRepository.get_default().get_all_stores()


def test_mitmproxy_dump_master_builds() -> None:
    from mitmproxy import options
    from mitmproxy.tools.dump import DumpMaster

    async def build() -> DumpMaster:
        return DumpMaster(options.Options(), with_termlog=False, with_dumper=False)

    assert asyncio.run(build()) is not None
