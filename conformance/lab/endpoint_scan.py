"""HY-ENDPOINT scan: sslyze against each cloud endpoint, by address (no DNS of its own).

Run as `python -m conformance.lab.endpoint_scan CONFIG` inside the lab target's namespace
after the judged capture has stopped, so the scan is not judged as the target's traffic
(decision 7). Writes one JSON document: per endpoint, the protocol versions offered, weak
suites accepted, and the certificate facts (chain valid for the name with the given CA
file, days to expiry).
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

_VERSION_COMMANDS = {
    "SSL 2.0": "ssl_2_0_cipher_suites",
    "SSL 3.0": "ssl_3_0_cipher_suites",
    "TLS 1.0": "tls_1_0_cipher_suites",
    "TLS 1.1": "tls_1_1_cipher_suites",
    "TLS 1.2": "tls_1_2_cipher_suites",
    "TLS 1.3": "tls_1_3_cipher_suites",
}
_WEAK_MARKS = ("NULL", "EXPORT", "anon", "RC4", "3DES", "DES_CBC", "RC2", "IDEA", "MD5")


def scan(
    endpoints: list[dict[str, Any]], ca_file: Path | None, proxy: str | None = None
) -> list[dict[str, Any]]:
    from sslyze import (  # type: ignore[attr-defined]  # sslyze re-exports without __all__
        CertificateInfoExtraArgument,
        ScanCommand,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkLocation,
        ServerScanRequest,
    )
    from sslyze.server_setting import HttpProxySettings

    proxy_settings = None
    if proxy:
        host, _, port = proxy.rpartition(":")
        proxy_settings = HttpProxySettings(hostname=host.strip("[]"), port=int(port))

    commands = {ScanCommand(c) for c in _VERSION_COMMANDS.values()} | {ScanCommand.CERTIFICATE_INFO}
    extra = (
        ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca_file)
        )
        if ca_file is not None
        else ScanCommandsExtraArguments()
    )
    requests = [
        ServerScanRequest(
            server_location=ServerNetworkLocation(
                e["name"],
                e["port"],
                None if proxy_settings else e["address"],
                http_proxy_settings=proxy_settings,
            ),
            scan_commands=commands,
            scan_commands_extra_arguments=extra,
        )
        for e in endpoints
    ]
    scanner = Scanner()
    scanner.queue_scans(requests)
    results = []
    for result in scanner.get_results():
        location = result.server_location
        entry: dict[str, Any] = {
            "name": location.hostname,
            "port": location.port,
            "address": location.ip_address,
            "connectivity": result.connectivity_status.name,
            "error": result.connectivity_error_trace
            and str(result.connectivity_error_trace)[-300:],
            "versions": [],
            "weak_suites": [],
            "certificate": None,
        }
        scan_result = result.scan_result
        if scan_result is not None:
            for version, attribute in _VERSION_COMMANDS.items():
                attempt = getattr(scan_result, attribute)
                if attempt.result is None:
                    continue
                accepted = [s.cipher_suite.name for s in attempt.result.accepted_cipher_suites]
                if accepted:
                    entry["versions"].append(version)
                    entry["weak_suites"] += [
                        f"{version} {name}"
                        for name in accepted
                        if any(m in name for m in _WEAK_MARKS)
                    ]
            attempt = scan_result.certificate_info
            entry["certificate"] = _certificate(attempt.result, location.hostname)
            if attempt.result is None:
                entry["error"] = f"certificate scan: {attempt.status.name} {attempt.error_reason}"
        results.append(entry)
    return results


def _names(leaf: Any) -> list[str]:
    from cryptography import x509

    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(n).lower() for n in san.value.get_values_for_type(x509.DNSName)]


def _certificate(info: Any, hostname: str) -> dict[str, Any] | None:
    from conformance.names import matches

    if info is None or not info.certificate_deployments:
        return None
    deployment = info.certificate_deployments[0]
    leaf = deployment.received_certificate_chain[0]
    now = datetime.datetime.now(datetime.UTC)
    not_after = leaf.not_valid_after_utc
    validations = {
        v.trust_store.name: v.was_validation_successful for v in deployment.path_validation_results
    }
    return {
        "subject": leaf.subject.rfc4514_string(),
        "not_after": not_after.isoformat(),
        "days_to_expiry": (not_after - now).days,
        # sslyze 6 validates paths with the name; this says which part failed, if one did.
        "matches_name": any(
            n == hostname.lower() or (n.startswith("*.") and matches(n, hostname))
            for n in _names(leaf)
        ),
        "names": _names(leaf),
        "trusted_by": sorted(name for name, ok in validations.items() if ok),
        "key_bits": getattr(leaf.public_key(), "key_size", None),
        "key_type": _key_type(leaf.public_key()),
    }


def _key_type(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    for kind, name in (
        (rsa.RSAPublicKey, "RSA"),
        (ec.EllipticCurvePublicKey, "EC"),
        (dsa.DSAPublicKey, "DSA"),
    ):
        if isinstance(key, kind):
            return name
    return type(key).__name__


def main(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    ca = Path(config["ca_file"]) if config.get("ca_file") else None
    results = scan(config["endpoints"], ca, config.get("proxy"))
    Path(config["output"]).write_text(json.dumps({"endpoints": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
