"""What a benchmark reads off a model and the process besides time: which performance levers a model
pulls (seen by running it), the CPU's GEMM rate, and the peak resident memory of one call."""
from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import re
import sys
import time

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


class _Calls(TorchFunctionMode):
    """Counts the torch functions one forward calls, and the conv2d calls whose input is channels_last."""

    def __init__(self):
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()
        self.channels_last = 0
        self.query_rows: list[int] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        self.calls[name] += 1
        if name in ("scaled_dot_product_attention", "softmax") and args:
            self.query_rows.append(args[0].shape[-2])  # of the attention weights (explicit: the logits)
        # a (B, C, 1, 1) input is both layouts at once; only a genuinely channels_last one counts
        if name == "conv2d" and args and args[0].dim() == 4 and not args[0].is_contiguous() \
                and args[0].is_contiguous(memory_format=torch.channels_last):
            self.channels_last += 1
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def onednn_counted(counts: collections.Counter):
    """Within it, ``counts`` counts vitdsl's matrix products on oneDNN (``blocks/modules/onednn.py``) by
    what is fused into them: "none", an activation ("gelu", "swish", ...) or "add" (the residual)."""
    from vitdsl.blocks.modules import onednn

    plain = onednn._pointwise

    class Counted:
        def __call__(self, x, w, b, attr, scalars, algorithm):
            counts[attr] += 1
            return plain(x, w, b, attr, scalars, algorithm)

        def binary(self, *args):
            counts[args[-1]] += 1
            return plain.binary(*args)

    onednn._pointwise = Counted()
    try:
        yield
    finally:
        onednn._pointwise = plain


def levers(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """The performance levers ``model`` pulls on ``x``, seen in one eval forward: how many calls take the
    fused ``scaled_dot_product_attention`` kernel, how many conv2d calls run channels_last; for a vitdsl
    model also its attention modules' calls and how many of those modules project q, k and v with one
    fused Linear. vitdsl has no lever switchboard to ask, so they are read off what runs."""
    from vitdsl.blocks.modules import depthwise
    from vitdsl.blocks.modules.attention.core import Attention, QVBiasLinear

    cores = [m for m in model.modules() if isinstance(m, Attention)]
    attention_calls = [0]
    hooks = [m.register_forward_hook(lambda *_: attention_calls.__setitem__(0, attention_calls[0] + 1))
             for m in cores]
    onednn: collections.Counter[str] = collections.Counter()
    fits, channelwise = depthwise.fits, set()

    def fitting(t, conv):  # the depthwise convolutions compiled training would run as vitdsl::depthwise
        found = fits(t, conv)
        if found:
            channelwise.add(id(conv))
        return found

    depthwise.fits = fitting
    try:
        with torch.inference_mode(), _Calls() as seen, onednn_counted(onednn):
            model.eval()(x)
    finally:
        depthwise.fits = fits
        for h in hooks:
            h.remove()
    # unwatched (a hooked vitdsl model computes every row): which attention calls have fewer query rows
    with torch.inference_mode(), _Calls() as free:
        model(x)
    row_calls = [sum(a != b for a, b in zip(seen.query_rows, free.query_rows))]
    out = {"sdpa_calls": seen.calls["scaled_dot_product_attention"], "conv2d_calls": seen.calls["conv2d"],
           "channels_last_conv2d_calls": seen.channels_last, "onednn_linears": onednn.total(),
           "fused_epilogues": onednn.total() - onednn["none"], "linears": onednn.total() + seen.calls["linear"],
           "depthwise_ops": len(channelwise)}
    if cores:
        fused = sum(isinstance(getattr(m, "qkv", None), (nn.Linear, QVBiasLinear)) for m in cores)
        out.update(attention_modules=len(cores), attention_calls=attention_calls[0], fused_qkv_modules=fused,
                   read_rows_calls=row_calls[0])
    return out


def sliced_mlps(model: nn.Module, x: torch.Tensor) -> int:
    """How many MLP calls of one inference forward of ``model`` on ``x`` run their tokens in slices (a hidden
    activation over 32 MiB: ``vitdsl/blocks/modules/mlp.py``); it depends on the batch, so it is read at the
    largest eval batch."""
    from vitdsl.blocks.modules.mlp import MLP

    found = [0]

    def seen(module, args):
        found[0] += module.slice_step(args[0].permute(0, 2, 3, 1) if module.maps else args[0]) is not None

    hooks = [m.register_forward_pre_hook(seen) for m in model.modules() if isinstance(m, MLP)]
    try:
        with torch.inference_mode():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return found[0]


def recomputing_blocks(model: nn.Module, x: torch.Tensor) -> tuple[int, int, int]:
    """Of the residual blocks (MLP, attention, ...) that one training forward of ``model`` on ``x`` calls, how
    many keep only their matrix products for backward and recompute the rest (``blocks/modules/recompute.py``),
    how many there are, and how many of the recomputing MLP calls run in slices (training's, a hidden over 32
    MiB: ``blocks/modules/mlp.py``). The model is left in eval mode, its buffers (batch norm statistics) as they
    were."""
    from vitdsl.blocks.modules.common import Mixer
    from vitdsl.blocks.modules.mlp import MLP

    calls, recomputed, sliced = [0], [0], [0]

    def counting(m: Mixer):
        plain = m.recomputed_mix  # an MLP's slices call the class's, not this

        def counted(t: torch.Tensor) -> torch.Tensor:
            recomputed[0] += 1
            sliced[0] += isinstance(m, MLP) and m.train_slice_step(t) is not None
            return plain(t)
        return counted

    mixers = [m for m in model.modules() if isinstance(m, Mixer)]
    hooks = [m.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1)) for m in mixers]
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    for m in mixers:
        m.recomputed_mix = counting(m)
    try:
        model.train()(x)
    finally:
        for m in mixers:
            del m.recomputed_mix
        model.eval()
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        for h in hooks:
            h.remove()
    return recomputed[0], calls[0], sliced[0]


def lever_words(lv: dict[str, int]) -> str:
    """``levers``' findings in a few words: 'sdpa 12/12, qkv 12/12, cl 33/38'."""
    words = []
    if "attention_calls" in lv:
        words.append(f"sdpa {lv['sdpa_calls']}/{lv['attention_calls']}")
        words.append(f"qkv {lv['fused_qkv_modules']}/{lv['attention_modules']}")
    elif lv.get("sdpa_calls"):
        words.append(f"sdpa {lv['sdpa_calls']}")
    if lv.get("read_rows_calls"):
        words.append(f"rows {lv['read_rows_calls']}")
    if lv.get("onednn_linears"):
        words.append(f"onednn {lv['onednn_linears']}/{lv['linears']} (fused {lv['fused_epilogues']})")
    if lv.get("conv2d_calls"):
        words.append(f"cl {lv['channels_last_conv2d_calls']}/{lv['conv2d_calls']}")
    if lv.get("depthwise_ops"):
        words.append(f"dw-op {lv['depthwise_ops']}")
    if lv.get("residual_blocks"):
        words.append(f"recompute {lv['recomputing_blocks']}/{lv['residual_blocks']}")
    if lv.get("sliced_mlp_calls"):
        words.append(f"slices {lv['sliced_mlp_calls']} (b{lv['sliced_at_batch']})")
    if lv.get("train_sliced_mlp_calls"):
        words.append(f"train slices {lv['train_sliced_mlp_calls']} (b{lv['train_sliced_at_batch']})")
    if lv.get("heap_kept"):
        words.append("heap kept")
    return ", ".join(words) or "-"


LEVERS_LEGEND = ("levers (vitdsl, seen in one forward): sdpa k/n = attention calls on the fused "
                 "scaled_dot_product_attention kernel (the others run the explicit softmax, as a relative-position "
                 "bias does in CPU training: faster than SDPA's math fallback); qkv k/n = "
                 "attention modules with one fused q/k/v Linear; rows k = attention calls that compute only "
                 "the tokens read after them (the last block, for the class token: Network.skip_unread_tokens); "
                 "onednn k/n (fused f) = Linear calls that run on oneDNN in CPU inference, f of them with the "
                 "activation or the residual add fused in (compiled too, as vitdsl::linear custom ops, but for "
                 "outputs over 32 MiB, which compiled inference leaves to inductor); "
                 "cl k/n = conv2d calls on channels_last inputs; dw-op k = depthwise convolutions that compiled "
                 "training runs channels-last as the vitdsl::depthwise custom op; "
                 "recompute k/n = residual blocks that, in an "
                 "eager training step, keep only their matrix products for backward and recompute the rest; "
                 "slices k (bB) = MLP calls at batch B that run their tokens in slices, in inference a hidden "
                 "activation over 32 MiB; train slices k (bB) = the same in a training step, recomputing each slice; "
                 "heap kept = the process keeps the memory its steps free in its heap (glibc's trimming off, as "
                 "in every process that builds a vitdsl model on the CPU)")


def gemm_laps(n: int, reps: int) -> list[float]:
    """Seconds per fp32 (n x n) @ (n x n) matmul, ``reps`` of them after one warm-up."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    laps = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        laps.append(time.perf_counter() - start)
    return laps


def gemm_rate(n: int, laps: list[float]) -> float:
    """FLOP/s of the fastest lap (2 n^3 FLOPs a matmul): the rate the CPU reaches. A median let one busy
    moment of a shared machine halve it, and models then ran at "140%" of it."""
    return 2 * n ** 3 / min(laps)


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", open("/proc/self/status").read(), re.M)
    if match is None:
        raise OSError(f"no {field} in /proc/self/status")
    return int(match.group(1))


class PeakRSS:
    """The peak resident memory of one call above the resident memory just before it (Linux).

    Before the call: a garbage collection and glibc's ``malloc_trim(0)``, so that what earlier calls freed
    is handed back to the kernel rather than counted as "before"; then writing 5 to
    ``/proc/self/clear_refs``, which resets the kernel's high-water mark ``VmHWM`` to the current RSS.
    After it: ``VmHWM`` minus the RSS before. ``check()`` proves the reset works on this machine (a 64 MiB
    buffer, touched and freed, must stop counting after the reset); where it does not, ``reason`` says why
    and no memory figures are given."""

    def __init__(self):
        self.reason = self.check()
        self.peaks: dict[str, list[int]] = collections.defaultdict(list)
        self._start = 0
        try:
            self._trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            self._trim = None

    @staticmethod
    def _reset() -> None:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def check(self) -> str | None:
        if not sys.platform.startswith("linux"):
            return f"peak RSS needs Linux's /proc/self/clear_refs (this is {sys.platform})"
        try:
            self._reset()
            buffer = torch.ones(16 * 2**20)  # 64 MiB, every page touched
            high = _status_kib("VmHWM")
            del buffer
            self._reset()
            after = _status_kib("VmHWM")
        except OSError as exc:
            return f"peak RSS unavailable: {exc}"
        if high - after < 32 * 1024:
            return "peak RSS unavailable: writing 5 to /proc/self/clear_refs does not reset VmHWM here"
        return None

    def before(self, name: str) -> None:
        gc.collect()
        if self._trim is not None:
            self._trim(0)
        self._start = _status_kib("VmRSS")
        self._reset()

    def after(self, name: str) -> None:
        self.peaks[name].append((_status_kib("VmHWM") - self._start) * 1024)
