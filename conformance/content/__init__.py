"""Content-level evidence: the application messages the target sent, as recorded by an
intercepting proxy (DECRYPTED_REQUESTS) or the lab's cloud stand-ins (CLOUD_REQUESTS).

`decode` turns message bodies into JSON-able trees (JSON, gRPC frames, a schema-less protobuf
walk, text, base64 for the rest); `logs` reads every content log into `ContentMessage`s;
`personal` finds personal data in a tree, nested and encoded values included; `squid` reads a
squid access.log. Nothing here imports mitmproxy: only `conformance.lab.intercept` runs it.

Content from the customer's own evidence (docs/telemetry-evidence.md): `tls_keylog` reads and
checks NSS key logs and pcapng Decryption Secrets Blocks; `prefilter` cuts a capture down to
the target's TLS and HTTP connections; `tshark_content` decrypts them with tshark into message
records; `har` reads HAR 1.2; `coverage` lists which TLS connections of the target each source
explains; `redact` takes personal data and credentials out of the kept messages;
`own_evidence` runs it all for a source and writes the evidence files.
"""
