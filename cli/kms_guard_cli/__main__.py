"""`python -m kms_guard_cli`: the same as the `kms-guard` command."""

import sys

from kms_guard_cli.main import main

sys.exit(main())
