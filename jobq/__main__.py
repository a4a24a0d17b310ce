from __future__ import annotations

from jobq.cli import main

main()
