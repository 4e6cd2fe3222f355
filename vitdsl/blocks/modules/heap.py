"""A process that builds a vitdsl model on the CPU keeps the memory its steps free in its heap (glibc), as
PyTorch's CUDA allocator keeps the GPU memory it frees: freed memory is reused, not handed back to the kernel
and faulted in again, page by page, on the next step.

Why: glibc returns the top of its heap to the kernel whenever more than twice its mapping threshold (which it
raises up to 32 MiB) lies free there. A training step frees its activations in backward; when they are the top
of the heap, every step gives them back and the next forward faults them in again. Whether they are depends on
the order of every allocation in the process, so two models of the same maths differ by chance: on this
project's 2-core CPU, each side in its own process, vitdsl's compiled training steps took 85k-150k page faults
(EVA-02-T, 0.17-0.25 s of system time a step) where timm's took 2k-17k; ViT-S 157k-206k, Swin-T 305k-325k.
Kept, they took under 1.2k, and the step's system time fell to 0.01-0.03 s (docs/architecture.md has the
timings).

What it sets, once per process and only where the C library is glibc: ``mallopt(M_TRIM_THRESHOLD, -1)``
(never trim the heap's top: glibc's documented way to turn trimming off) and ``M_MMAP_THRESHOLD`` at
``MAPPED_FRESH_ABOVE`` (setting the first fixes the second, which glibc otherwise raises as it goes, up to
that value). Allocations over it are still mapped fresh on every call: the MLP's slices (mlp.py) and
compiled inference's products (onednn.py) keep under it. ``VITDSL_KEEP_HEAP=0`` in the environment leaves
glibc's defaults alone.
"""
from __future__ import annotations

import ctypes
import os

# glibc's largest threshold for mapping an allocation: one over it is mapped fresh from the kernel on every call,
# and every page of it faults on first touch (the MLP's slices, mlp.py, and compiled inference's products)
MAPPED_FRESH_ABOVE = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
_kept: bool | None = None  # None: not decided yet


def glibc() -> bool:
    """Whether this process's C library is glibc (musl, macOS and Windows have no mallopt of this kind)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


def keep() -> bool:
    """Keep freed memory in the heap from now on, once per process; whether it is kept (False: not glibc, the
    environment said no, or glibc refused)."""
    global _kept
    if _kept is None:
        _kept = False
        if os.environ.get("VITDSL_KEEP_HEAP", "1") != "0" and glibc():
            mallopt = ctypes.CDLL(None).mallopt
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            _kept = bool(mallopt(_M_MMAP_THRESHOLD, MAPPED_FRESH_ABOVE) and mallopt(_M_TRIM_THRESHOLD, -1))
    return _kept


def kept() -> bool:
    """Whether this process keeps freed memory in its heap (``keep`` ran and succeeded)."""
    return bool(_kept)
