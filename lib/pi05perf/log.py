"""Progress lines of long measurements ("checking and timing ...", per-variant timings).

They go to stderr: a terminal or papermill's log shows them while a chapter runs, and the
book's pages leave them out (`nb_output_stderr: remove` in _config.yml); the results a page
presents are its tables, charts and sentences.
"""
from __future__ import annotations

import sys


def progress(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)
