"""A script job: prints its arguments and an environment variable, then exits 0 (no FIN)."""

import os
import sys

print("hello from a script job", sys.argv[1:], os.environ.get("HELLO", ""))
