"""Reading a ``.safetensors`` file without the ``safetensors`` package (an optional extra vitdsl does
not need): the format is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw little-endian data. Nothing in it is executed; every range
is checked against the file before a byte of it is read.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from ..errors import VitdslError

MAX_HEADER = 100 << 20  # the format's own limit
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def _bad(path: Path, what: str) -> VitdslError:
    return VitdslError(f"safetensors file '{path}' {what}",
                       hint="it is damaged or not a safetensors file; download it again")


def read(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, in the header's order."""
    if sys.byteorder != "little":
        raise VitdslError("reading safetensors files needs a little-endian machine",
                          hint="pip install safetensors and load the file with safetensors.torch.load_file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _bad(path, "is shorter than its 8-byte header length")
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER or 8 + n > size:
                raise _bad(path, f"declares a header of {n:,} bytes, beyond the file or the format's 100 MiB")
            try:
                header = json.loads(f.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise _bad(path, f"has a header that is not JSON ({e})") from None
            if not isinstance(header, dict):
                raise _bad(path, "has a header that is not a JSON object")
            data_size = size - 8 - n
            entries = []
            for key, entry in header.items():
                if key == "__metadata__":
                    continue
                entries.append((key, *_entry(path, key, entry, data_size)))
            taken = sorted((begin, end, key) for key, _, _, begin, end in entries)
            for (_, end, a), (begin, _, b) in zip(taken, taken[1:]):
                if begin < end:
                    raise _bad(path, f"has tensors '{a}' and '{b}' over the same bytes")
            out = {}
            for key, dtype, shape, begin, end in entries:
                f.seek(8 + n + begin)
                raw = bytearray(f.read(end - begin))
                tensor = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
                out[key] = tensor.reshape(shape)
            return out
    except OSError as e:
        raise _bad(path, f"cannot be read: {e.strerror or e}") from None


def _entry(path: Path, key: str, entry, data_size: int):
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _bad(path, f"describes tensor '{key}' without exactly dtype, shape and data_offsets")
    dtype = DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise _bad(path, f"gives tensor '{key}' the dtype {entry['dtype']!r}, which vitdsl does not read "
                         f"(it reads {', '.join(DTYPES)})")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                            for d in shape)):
        raise _bad(path, f"gives tensor '{key}' the shape {shape!r}, not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size):
        raise _bad(path, f"gives tensor '{key}' the byte range {offsets!r}, outside its {data_size:,} data bytes")
    numel = 1
    for d in shape:
        numel *= d
    width = torch.empty(0, dtype=dtype).element_size()
    if numel * width != offsets[1] - offsets[0]:
        raise _bad(path, f"gives tensor '{key}' {offsets[1] - offsets[0]:,} bytes for {numel:,} values of "
                         f"{width} byte(s)")
    return dtype, shape, offsets[0], offsets[1]
