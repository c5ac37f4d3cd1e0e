"""`python -m conformance`: the same command line as `ucx-conformance`."""

import sys

from conformance.cli import main

sys.exit(main())
