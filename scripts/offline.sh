# Sourced by the scripts that run the tests (scripts/test, scripts/sanitize): `offline WHO CMD...`
# runs CMD in a fresh, empty network namespace with only loopback up (the tests must not need a
# network, and make no traffic outside it), where this machine lets root make one.
offline() {
  local who=$1
  shift
  if [ "$(id -u)" -eq 0 ] && unshare --net true 2>/dev/null; then
    unshare --net sh -c 'ip link set lo up && exec "$@"' sh "$@"
  else
    echo "$who: not root or no unshare: running without network isolation" >&2
    "$@"
  fi
}
