"""The long-lived processes' start-up heap, out of the garbage collector's sight.

A full collection walks every tracked object. In the API and the worker most of them are the
modules, schemas and tables loaded at start-up, which live as long as the process; while a
request or a batch allocates, full collections walked them again and again (a third of a batch
request's CPU, a quarter of batch preparation's: bench/RESULTS.md). Frozen once start-up is
done, they are never walked again; what is allocated afterwards is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once, when the process has loaded what it keeps for its lifetime."""
    gc.collect()
    gc.freeze()
