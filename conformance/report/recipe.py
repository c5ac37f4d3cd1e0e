"""The independent check an auditor can run without this tool: bash, jq, base64, openssl.

Kept as one constant so the documentation (docs/verify.md), the HTML report and the test
that runs it (tests/sign/test_openssl_recipe.py) cannot drift apart.
"""

from __future__ import annotations

# Run inside the report directory, PUB naming the signer's public key the auditor pinned.
# Steps mirror conformance.sign.verify: signature over DSSE PAE first, then hashes, then
# the absence of anything the statement does not name.
VERIFY_RECIPE = r"""set -euo pipefail
: "${PUB:?set PUB to the signer public key you pinned, not the one inside the report}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# 1. The signed bytes, DSSE v1 PAE: "DSSEv1 <len(type)> <type> <len(payload)> <payload>"
test "$(jq '.signatures | length' report.intoto.json)" = 1
type=$(jq -r .payloadType report.intoto.json)
test "$type" = application/vnd.in-toto+json
jq -r .payload report.intoto.json | base64 -d > "$work/payload"
printf 'DSSEv1 %d %s %d ' "${#type}" "$type" "$(wc -c < "$work/payload")" > "$work/pae"
cat "$work/payload" >> "$work/pae"
jq -r '.signatures[0].sig' report.intoto.json | base64 -d > "$work/sig"
# 2. The Ed25519 signature over exactly those bytes (OpenSSL 3: -rawin, no pre-hash)
openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in "$work/pae" -sigfile "$work/sig"
# 3. Every file has the SHA-256 the signed statement lists
jq -r '.subject[] | "\(.digest.sha256)  \(.name)"' "$work/payload" \
  | sha256sum --check --strict --quiet
# 4. Nothing else is there: no extra file, no symlink, no special file
jq -r '.subject[].name' "$work/payload" | LC_ALL=C sort > "$work/listed"
find . -type f ! -path ./report.intoto.json | sed 's|^\./||' | LC_ALL=C sort > "$work/present"
diff "$work/listed" "$work/present"
test -z "$(find . ! -type f ! -type d)"
echo "report verified: signature by $PUB, every file's SHA-256, no extra files"
"""

# The fingerprint the report shows, from the public key file alone.
FINGERPRINT_RECIPE = "openssl pkey -pubin -in signer.pub -outform DER | sha256sum"
