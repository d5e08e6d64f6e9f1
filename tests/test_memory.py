"""memory.give_back returns freed memory to the system (glibc's malloc_trim)."""

from __future__ import annotations

import gc
import platform
from pathlib import Path

import pytest

from monitor import memory


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_to_the_system() -> None:
    # 100 MiB in blocks too large for Python's own allocator, then one block after them,
    # so the heap cannot simply shrink from its top: only a trim releases the pages.
    blocks = [bytearray(2048) for _ in range(50_000)]
    last = bytearray(2048)
    del blocks
    gc.collect()
    before = resident_mib()
    memory.give_back()
    after = resident_mib()
    assert before - after > 50, (before, after)
    assert last  # kept alive until here
