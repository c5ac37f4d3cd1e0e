"""Content-level evidence: the application messages the target sent, as recorded by an
intercepting proxy (DECRYPTED_REQUESTS) or the lab's cloud stand-ins (CLOUD_REQUESTS).

`decode` turns message bodies into JSON-able trees (JSON, gRPC frames, a schema-less protobuf
walk, text, base64 for the rest); `logs` reads both logs into `ContentMessage`s; `personal`
finds personal data in a tree, nested and encoded values included; `squid` reads a squid
access.log. Nothing here imports mitmproxy: only `conformance.lab.intercept` runs it.
"""
