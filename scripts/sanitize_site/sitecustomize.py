"""scripts/sanitize: every Python process under AddressSanitizer, and no other program.

The sanitizer's runtime must be the first library a process loads, so a process that loads
the instrumented extension modules has to start with it in LD_PRELOAD. scripts/sanitize
puts this module in the site-packages of the environment the tests run from, so every
Python process started from it (`sys.executable`, whatever environment a test gives it)
imports it when it starts: one started without the runtime starts again with it, and each
removes it from its own environment, so the programs the tests run (editcap, tshark, ...)
start without it (editcap hangs under it).
"""

import os
import sys

PRELOAD_ENV = "UCX_SANITIZE_PRELOAD"  # the runtime's path, set by scripts/sanitize

_preload = os.environ.get(PRELOAD_ENV, "")
if _preload:
    if os.environ.get("LD_PRELOAD") != _preload:
        os.execve(sys.executable, sys.orig_argv, {**os.environ, "LD_PRELOAD": _preload})
    del os.environ["LD_PRELOAD"]
