"""Keeping a relay that moves large chunks small: glibc's mmap threshold (issue 17).

glibc serves an allocation above ``M_MMAP_THRESHOLD`` (128 KiB at start) with its own ``mmap``
and gives it back to the system when it is freed, but each such free also *raises* the
threshold (up to 32 MiB), so that later 1 MiB message bodies come from the heap, where they
fragment it and keep its pages resident. Measured with ``python -m tests.bench.bigdocs``: a
relay moving 1 GB in 1 MiB chunks peaked at 426 MB (VmHWM); with the threshold fixed, a
300 MB run peaked at 147 MB. Setting the threshold (``mallopt``) turns the adjustment off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Final

#: ``M_MMAP_THRESHOLD`` in glibc's ``malloc.h``.
_M_MMAP_THRESHOLD: Final = -3
MMAP_THRESHOLD_BYTES: Final = 128 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold for this process; False where that is not possible (not
    glibc), which changes nothing else."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError, TypeError):
        return False
