"""Reading and writing ``.safetensors`` files without the ``safetensors`` package (an optional extra vitdsl
does not need): the format is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range (and ``__metadata__``, text to text), then the raw little-endian data. Nothing
in it is executed; every range is checked against the file before a byte of it is read.
"""
from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from .errors import VitdslError

MAX_HEADER = 100 << 20  # the format's own limit


@cache
def dtypes() -> dict[str, Any]:
    """The format's dtype names → torch's (torch imported here: recognising a file needs none)."""
    import torch

    return {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
            "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
            "BOOL": torch.bool}


def _bad(path: Path, what: str) -> VitdslError:
    return VitdslError(f"safetensors file '{path}' {what}",
                       hint="it is damaged or not a safetensors file; download it again")


def looks_like(path: Path) -> bool:
    """Whether the file starts as a safetensors file does: a header length within the format's limit and the
    file, a JSON object from byte 8 to that length (``}`` last, or the spaces that pad it). A pickle's first
    bytes can read as a plausible length, never as all of this."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            n = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
            if not (2 <= n <= MAX_HEADER and head[8:9] == b"{" and 8 + n <= Path(path).stat().st_size):
                return False
            f.seek(8 + n - 1)
            return f.read(1) in (b"}", b" ")
    except OSError:
        return False


def write(path, tensors: dict[str, Any], metadata: dict[str, str]) -> None:
    """Write ``tensors`` (each key its own bytes: tied tensors are the caller's to deduplicate) and
    ``metadata`` to the open binary file or path ``path``, in the format ``read`` takes."""
    if sys.byteorder != "little":
        raise VitdslError("writing safetensors files needs a little-endian machine")
    import torch

    names = {v: k for k, v in dtypes().items()}
    header: dict = {"__metadata__": metadata}
    offset, blobs = 0, []
    for key, t in tensors.items():
        if t.dtype not in names:
            raise VitdslError(f"tensor '{key}' is {t.dtype}, which safetensors files here do not hold "
                              f"(they hold {', '.join(str(d).removeprefix('torch.') for d in names)})")
        data = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + data.numel()]}
        offset += data.numel()
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned, as the format recommends
    own = not hasattr(path, "write")
    f = open(path, "wb") if own else path
    try:
        f.write(len(text).to_bytes(8, "little") + text)
        for data in blobs:
            f.write(data.numpy().tobytes() if data.numel() else b"")
    finally:
        if own:
            f.close()


def metadata(path: Path) -> dict[str, str]:
    """The header's ``__metadata__`` (text to text), {} when it has none."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if n > MAX_HEADER:
            raise _bad(path, f"declares a header of {n:,} bytes, beyond the format's 100 MiB")
        try:
            meta = json.loads(f.read(n)).get("__metadata__") or {}
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
            raise _bad(path, f"has a header that is not a JSON object ({e})") from None
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise _bad(path, "has __metadata__ that is not a mapping of text to text")
    return meta


def read(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file, in the header's order."""
    import torch

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
    import torch

    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise _bad(path, f"describes tensor '{key}' without exactly dtype, shape and data_offsets")
    dtype = dtypes().get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise _bad(path, f"gives tensor '{key}' the dtype {entry['dtype']!r}, which vitdsl does not read "
                         f"(it reads {', '.join(dtypes())})")
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
