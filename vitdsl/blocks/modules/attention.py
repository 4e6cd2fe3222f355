"""Multi-head attention: fused scaled_dot_product_attention, or the explicit softmax path while
attention maps are being recorded (``record_attention``)."""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .common import Mixer

# Set by ``record_attention``: called with (module, attention weights) from the explicit path.
_recorder: list[Callable[[nn.Module, torch.Tensor], None] | None] = [None]
_explicit: list[bool] = [False]


@contextlib.contextmanager
def explicit_attention(record: Callable[[nn.Module, torch.Tensor], None] | None = None):
    """Run attention with an explicit softmax (so FLOP counters and recorders see every product)."""
    old = _explicit[0], _recorder[0]
    _explicit[0], _recorder[0] = True, record
    try:
        yield
    finally:
        _explicit[0], _recorder[0] = old


class HeadRMSNorm(nn.Module):
    """Per-head RMS norm of queries or keys (ViT-22B's qk-norm): normalize(x)·√d·γ, γ per head and channel."""

    def __init__(self, heads: int, dim_head: int):
        super().__init__()
        self.scale = dim_head ** 0.5
        self.weight = nn.Parameter(torch.ones(heads, 1, dim_head))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.weight


class Attention(Mixer):
    """Self-attention over (B, N, D) tokens."""

    def __init__(self, dim: int, heads: int, dim_head: int, qkv_bias: bool, out_bias: bool, project_out: bool,
                 attn_dropout: float, dropout: float, head_mix: str = "none", memories: int = 0,
                 task_tokens: int = 0, temperature: str = "fixed", mask_self: bool = False, qk_norm: bool = False,
                 scale: float | None = None, dim_value: int | None = None, **mixer):
        super().__init__()
        self.init_mixer(dim, **mixer)
        self.heads, self.dim_head, self.dim_value = heads, dim_head, dim_value or dim_head
        inner, inner_v = heads * dim_head, heads * self.dim_value
        self.widths = (inner, inner, inner_v)  # of q, k and v
        self.scale = dim_head ** -0.5 if scale is None else scale
        self.attn_dropout = attn_dropout
        self.qkv = nn.Linear(dim, 2 * inner + inner_v, bias=qkv_bias)
        self.out = nn.Linear(inner_v, dim, bias=out_bias) if project_out else None
        self.out_drop = nn.Dropout(dropout) if dropout > 0 else None
        self.head_mix = head_mix
        if head_mix == "talking":
            self.mix_pre = nn.Parameter(torch.randn(heads, heads))
            self.mix_post = nn.Parameter(torch.randn(heads, heads))
        elif head_mix == "reattention":
            self.reattn = nn.Parameter(torch.randn(heads, heads))
            self.reattn_norm = nn.LayerNorm(heads)
        self.memories = nn.Parameter(torch.randn(memories, dim)) if memories else None
        self.task_tokens = task_tokens
        # LSA: a learned log-temperature and no attention to oneself (explicit path only)
        self.temperature = nn.Parameter(torch.tensor(math.log(self.scale))) if temperature == "learned" else None
        self.mask_self = mask_self
        self.q_norm = HeadRMSNorm(heads, dim_head) if qk_norm else None
        self.k_norm = HeadRMSNorm(heads, dim_head) if qk_norm else None

    def bias(self) -> torch.Tensor | None:
        return None

    def mask(self, n: int, keys: int, device) -> torch.Tensor | None:
        """Boolean (n, keys) mask of who may attend to whom, or None."""
        if not self.task_tokens:
            return None
        t = self.task_tokens
        allowed = torch.zeros(n, keys, dtype=torch.bool, device=device)
        allowed[:t] = True
        allowed[t:, t:n] = True
        return allowed

    def fused(self) -> bool:
        """Whether SDPA can run this attention (no learned temperature, masks of its own or head mixing)."""
        return self.head_mix == "none" and self.temperature is None and not self.mask_self

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(q·kᵀ·scale + bias) @ v, where ``mask`` (boolean, broadcast to the logits) and the
        block's own mask allow; the one attention core that every attention module runs."""
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        bias = self.bias()
        own = self.mask(q.shape[-2], k.shape[-2], q.device)
        mask = own if mask is None else mask if own is None else mask & own
        # On CPU an additive bias sends SDPA to its math fallback, which is this same path plus a
        # "safe softmax" pass: measured 1.2–1.8× slower for MaxViT's 7×7 windows.
        if not _explicit[0] and self.fused() and (bias is None or q.device.type != "cpu"):
            p = self.attn_dropout if self.training else 0.0
            if bias is not None and mask is not None:
                bias = bias.masked_fill(~mask, -torch.finfo(bias.dtype).max)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask if bias is None else bias, dropout_p=p,
                                                  scale=self.scale)
        if self.temperature is None:
            sim = (q * self.scale) @ k.transpose(-2, -1)
        else:
            sim = (q @ k.transpose(-2, -1)) * self.temperature.exp()
        if bias is not None:
            sim = sim + bias
        if mask is not None:
            sim = sim.masked_fill(~mask, -torch.finfo(sim.dtype).max)
        if self.mask_self:  # -max, not -inf, as vit-pytorch: a lone token still gets weight 1
            eye = torch.eye(sim.shape[-2], sim.shape[-1], dtype=torch.bool, device=sim.device)
            sim = sim.masked_fill(eye, -torch.finfo(sim.dtype).max)
        if self.head_mix == "talking":
            sim = torch.einsum("bhij,hg->bgij", sim, self.mix_pre)
        attn = sim.softmax(dim=-1)
        if _recorder[0] is not None:
            _recorder[0](self, attn)
        attn = F.dropout(attn, self.attn_dropout, self.training)
        if self.head_mix == "talking":
            attn = torch.einsum("bhij,hg->bgij", attn, self.mix_post)
        elif self.head_mix == "reattention":
            attn = torch.einsum("bhij,hg->bgij", attn, self.reattn)
            attn = self.reattn_norm(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return attn @ v

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """(B, N, H·D) → (B, H, N, D)."""
        b, n, _ = t.shape
        return t.view(b, n, self.heads, -1).transpose(1, 2)

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        b, _, n, _ = out.shape
        out = out.transpose(1, 2).reshape(b, n, -1)
        if self.out is not None:
            out = self.out(out)
        if self.out_drop is not None:
            out = self.out_drop(out)
        return out

    @property
    def takes_context(self) -> bool:
        """Whether ``forward(x, context=c)`` works: plain attention, whose keys and values can come from
        other tokens (MP3's pre-training attends to the visible tokens)."""
        cls = type(self)
        plain = cls.forward is Attention.forward and cls.mix is Attention.mix and cls.attend is Attention.attend
        return plain and self.memories is None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is None:
            return super().forward(x)
        pre = self.norm_position == "pre"
        h, c = (self.norm(x), self.norm(context)) if pre else (x, context)  # one norm for both, as MP3
        return self.join(self.branch(self.mix(h, c)), x)

    def mix(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        if context is not None:  # queries from x, keys and values from the context: the one qkv weight, cut
            w, bias = self.qkv.weight, self.qkv.bias
            q_w, kv_w = w.split((self.widths[0], sum(self.widths[1:])))
            q_b, kv_b = bias.split((self.widths[0], sum(self.widths[1:]))) if bias is not None else (None, None)
            k, v = F.linear(context, kv_w, kv_b).split(self.widths[1:], dim=-1)
            q = F.linear(x, q_w, q_b)
            return self.merge(self.attend(self.split(q), self.split(k), self.split(v)))
        if self.dim_value == self.dim_head:
            q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            q, k, v = (self.split(t) for t in self.qkv(x).split(self.widths, dim=-1))
        keys = padding_keys(x)
        if self.memories is not None:
            inner = self.widths[0]
            kv_bias = self.qkv.bias[inner:] if self.qkv.bias is not None else None
            mk, mv = F.linear(self.memories, self.qkv.weight[inner:], kv_bias).split(self.widths[1:], dim=-1)
            k = torch.cat((k, self.split(mk.expand(b, -1, -1))), dim=2)
            v = torch.cat((v, self.split(mv.expand(b, -1, -1))), dim=2)
            if keys is not None:
                keys = F.pad(keys, (0, len(self.memories)), value=True)
        if keys is None:  # subclasses with an attend of their own (XCA) never see padding: validate refuses it
            return self.merge(self.attend(q, k, v))
        return self.merge(self.attend(q, k, v, keys[:, None, None, :]))


def padding_keys(x: torch.Tensor) -> torch.Tensor | None:
    """(B, N) True on the real rows of token sampling's padded tokens, None for plain ones: no token may
    attend to padding, or an image's result would depend on the others in its batch."""
    from .token_sampling import PaddedTokens  # it builds on Attention

    return x.mask if isinstance(x, PaddedTokens) else None


class CrossCovarianceAttention(Attention):
    """XCiT's cross-covariance attention: per head, a (dh × dh) softmax over channels of l2-normalised
    queries and keys (normalised along the tokens), scaled by exp of a learned per-head temperature."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.temperature = nn.Parameter(torch.ones(self.heads, 1, 1))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.transpose(-2, -1) for t in (q, k, v))  # (b, h, dh, n)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature.exp()).softmax(dim=-1)
        if _recorder[0] is not None:
            _recorder[0](self, attn)
        attn = F.dropout(attn, self.attn_dropout, self.training)
        return (attn @ v).transpose(-2, -1)


class GroupAttention(Attention):
    """Attention across the groups folded into the batch: (B·G, N, D) runs as (B·N, G, D), each token
    with the tokens at its position in the other groups."""

    def __init__(self, groups: int, **kwargs):
        super().__init__(**kwargs)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bg, n, d = x.shape
        b, g = bg // self.groups, self.groups
        y = super().forward(x.view(b, g, n, d).transpose(1, 2).reshape(b * n, g, d))
        return y.view(b, n, g, d).transpose(1, 2).reshape(bg, n, d)


def relative_index(wh: int, ww: int | None = None, col_major: bool = False) -> torch.Tensor:
    """(n, n) index, n = wh·ww, into a (2wh-1)·(2ww-1) table: (Δrow + wh - 1)·(2ww - 1) + (Δcol + ww - 1),
    or with ``col_major`` (Δrow + wh - 1) + (Δcol + ww - 1)·(2wh - 1)."""
    ww = wh if ww is None else ww
    grid = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1).T  # (n, 2)
    rel = grid[:, None, :] - grid[None, :, :]
    if col_major:
        return rel[..., 0] + wh - 1 + (rel[..., 1] + ww - 1) * (2 * wh - 1)
    return (rel[..., 0] + wh - 1) * (2 * ww - 1) + rel[..., 1] + ww - 1


def offsets(rh: int, rw: int) -> torch.Tensor:
    """(Δrow, Δcol) for Δrow in [-rh, rh], Δcol in [-rw, rw], row-major, as floats: (2rh+1)·(2rw+1) × 2."""
    grid = torch.meshgrid(torch.arange(-rh, rh + 1), torch.arange(-rw, rw + 1), indexing="ij")
    return torch.stack(grid).flatten(1).T.float()


def dynamic_bias_mlp(hidden: int) -> nn.Sequential:
    """CrossFormer's dynamic position bias: an offset (2,) → one bias, through three hidden layers."""
    layers: list[nn.Module] = [nn.Linear(2, hidden)]
    for last in (False, False, True):
        layers += [nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, 1 if last else hidden)]
    return nn.Sequential(*layers)


class LocalAttention(Attention):
    """Attention within windows of a (B, C, H, W) feature map: contiguous blocks or a dilated grid."""

    def __init__(self, partition: str, window: tuple[int, int], rel_pos_bias: str, rel_pos_index: str = "row-major",
                 bias_hidden: int | None = None, bias_index: str = "exact", **kwargs):
        super().__init__(**kwargs)
        self.partition, self.window = partition, tuple(window)
        wh, ww = self.window
        self.rel_pos_bias = self.rel_pos_mlp = None
        if rel_pos_bias == "table":
            self.rel_pos_bias = nn.Embedding((2 * wh - 1) * (2 * ww - 1), self.heads)
        elif rel_pos_bias == "dynamic":
            self.rel_pos_mlp = dynamic_bias_mlp(bias_hidden)
            # vit-pytorch evaluates one offset more on each side than the window has, then reads the
            # table with the stride of the exact one (see local-attn's bias_index)
            reach = (wh, ww) if bias_index == "vit-pytorch" else (wh - 1, ww - 1)
            self.register_buffer("rel_pos_offsets", offsets(*reach), persistent=False)
        if rel_pos_bias != "none":
            self.register_buffer("rel_pos_index", relative_index(wh, ww, rel_pos_index == "col-major"),
                                 persistent=False)

    def bias(self) -> torch.Tensor | None:
        if self.rel_pos_bias is not None:
            return self.rel_pos_bias(self.rel_pos_index).permute(2, 0, 1)
        if self.rel_pos_mlp is not None:  # (n, n), shared by all heads
            return self.rel_pos_mlp(self.rel_pos_offsets).squeeze(-1)[self.rel_pos_index]
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        sh, sw = self.window
        gh, gw = h // sh, w // sw
        # windows: (b gh gw) (sh sw) c ; block: h = (gh sh), grid: h = (sh gh)
        if self.partition == "block":
            t = x.view(b, c, gh, sh, gw, sw).permute(0, 2, 4, 3, 5, 1)
        else:
            t = x.view(b, c, sh, gh, sw, gw).permute(0, 3, 5, 2, 4, 1)
        t = super().forward(t.reshape(b * gh * gw, sh * sw, c)).view(b, gh, gw, sh, sw, c)
        # back to (b, c, h, w), kept channels-last in memory so the next token-wise block needs no copy
        t = t.permute(0, 1, 3, 2, 4, 5) if self.partition == "block" else t.permute(0, 3, 1, 4, 2, 5)
        return t.reshape(b, h, w, c).permute(0, 3, 1, 2)


class RegionalAttention(LocalAttention):
    """RegionViT's regional-to-local attention on (B, R + H·W, C) tokens: R region tokens on an rh×rw grid,
    one per window of the H×W patch grid, lead the patch tokens. The region tokens attend among themselves,
    then each window together with its region token; one set of weights serves both steps."""

    def __init__(self, regions: tuple[int, int], **kwargs):
        super().__init__(partition="block", **kwargs)
        self.regions = tuple(regions)
        self.with_bias = False  # which of the two steps is running: only windows get the position bias

    def bias(self) -> torch.Tensor | None:
        bias = super().bias() if self.with_bias else None
        return None if bias is None else F.pad(bias, (1, 0, 1, 0))  # the region token (first) gets no bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        (rh, rw), (sh, sw) = self.regions, self.window
        r, t = x[:, :rh * rw], x[:, rh * rw:]
        self.with_bias = False
        r = Attention.forward(self, r)
        t = t.reshape(b, rh, sh, rw, sw, c).permute(0, 1, 3, 2, 4, 5).reshape(b * rh * rw, sh * sw, c)
        self.with_bias = True
        t = Attention.forward(self, torch.cat((r.reshape(b * rh * rw, 1, c), t), dim=1))
        self.with_bias = False
        r = t[:, 0].reshape(b, rh * rw, c)
        t = t[:, 1:].reshape(b, rh, rw, sh, sw, c).permute(0, 1, 3, 2, 4, 5).reshape(b, -1, c)
        return torch.cat((r, t), dim=1)


class CrossAttention(Attention):
    """Queries (the leading special tokens, or all tokens) attend to context tokens; see ``cross-attn``."""

    def __init__(self, queries: int | None, context_skip: int, include_self: bool, context_norm: bool,
                 query_dim: int, **kwargs):
        super().__init__(**kwargs)
        dim, inner = kwargs["dim"], self.heads * self.dim_head
        self.queries, self.context_skip = queries, context_skip
        self.include_self, self.context_norm = include_self, context_norm
        # Separate projections: queries and keys/values read different tokens.
        del self.qkv
        self.q = nn.Linear(dim, inner, bias=kwargs["qkv_bias"])
        self.kv = nn.Linear(dim, 2 * inner, bias=kwargs["qkv_bias"])
        projected = query_dim != dim
        self.project_in = nn.Linear(query_dim, dim) if projected else None
        self.project_out = nn.Linear(dim, query_dim) if projected else None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        q_in = x[:, :self.queries] if self.queries is not None else x
        context = (x if context is None else context)[:, self.context_skip:]
        h = self.project_in(q_in) if self.project_in is not None else q_in
        if self.norm is not None:
            h = self.norm(h)
            if self.context_norm:
                context = self.norm(context)
        kv_in = torch.cat((h, context), dim=1) if self.include_self else context
        k, v = self.kv(kv_in).chunk(2, dim=-1)
        y = self.branch(self.merge(self.attend(self.split(self.q(h)), self.split(k), self.split(v))))
        if self.project_out is not None:
            y = self.project_out(y)
        y = self.join(y, q_in)
        if self.queries is None:
            return y
        return torch.cat((y, x[:, self.queries:]), dim=1)
