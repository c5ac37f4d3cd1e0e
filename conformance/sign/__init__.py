"""Ed25519 keys, the DSSE envelope around an in-toto Statement v1, and offline verification.

keys.py         generate, load, fingerprint; the default key outside any report
digest.py       streaming SHA-256 of files, copy-and-hash in one pass
strict_json.py  JSON parsing that refuses duplicate keys (no parser differentials)
statement.py    the in-toto Statement v1 naming every file of a report directory
dsse.py         PAE, signing and the envelope file `report.intoto.json`
verify.py       numbered verification steps: signature first, then hashes, then content
recipe.py       the same check with jq, base64, openssl and sha256sum, for auditors
"""
