# Sourced by the scripts (from the checkout's top directory): the virtual environment they use.
# $UCX_VENV, else the active $VIRTUAL_ENV, else .venv in the checkout. scripts/bootstrap makes
# it; the scripts then call "$venv/bin/python" and "$venv/bin/ucx-conformance" by path, so
# nothing depends on an activated environment or on what `python` means on this machine.
venv="${UCX_VENV:-${VIRTUAL_ENV:-$PWD/.venv}}"
case "$venv" in
  /*) ;;
  *) venv="$PWD/$venv" ;;
esac
