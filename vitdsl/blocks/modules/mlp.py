from __future__ import annotations

import torch
from torch import nn

from .common import BatchNormLast, Mixer, make_act, norm_eps
from .depthwise import depthwise
from .heap import MAPPED_FRESH_ABOVE
from .onednn import eager_cpu_inference, linear

# Inference on CPU: a hidden activation over 32 MiB is one glibc always maps fresh from the kernel (its
# largest heap threshold), so each call page-faults through all of it, twice (fc1's output, the activation's).
# Such a block runs in slices of about SLICE_BYTES of hidden: each slice's hidden is reused heap memory and
# stays in cache from fc1 to fc2. A row-wise MLP is sliced by tokens (at least SLICE_ROWS of them); one with a
# depthwise convolution, which mixes neighbouring tokens, by whole images. Swin-T at batch 8 has two such MLPs
# (25088 tokens × 384); measured alone, its forward took 0.88 of the time. Smaller hiddens stay whole: there,
# one big GEMM is as fast or faster.
SLICE_ABOVE = MAPPED_FRESH_ABOVE
SLICE_BYTES = 4 << 20
SLICE_ROWS = 1024
# Training on CPU: the same, for the hidden tensors of a recomputing block (recompute.py), which are fresh
# pages in forward (fc1's output, kept; the activation's) and in backward (the recomputed activation, the
# gradients). Each slice recomputes on its own; its hidden stays under glibc's largest mapping threshold, so
# it is heap memory, reused from step to step. PVT v2-b1's training step at batch 16 went from ~550k page faults
# to 25-50k; slices of 16 MiB were faster than 4 (more, smaller products and weight gradients) or 24.
TRAIN_SLICE_BYTES = 16 << 20


class MLP(Mixer):
    """Linear → act → dropout → Linear → dropout over the last dimension (channels of a map)."""

    recompute = True

    def __init__(self, dim: int, hidden: int, act: str, bias: bool, dropout: float, channels_first: bool = False,
                 prefix: int | None = None, out_dropout: bool = True, proj_norm: str = "none",
                 dwconv: int | None = None, dwconv_relu: bool = False, gate: str = "none", gate_norm: bool = False,
                 dim_out: int | None = None, **mixer):
        super().__init__()
        self.init_mixer(dim, **mixer)
        # not Mixer.channels_first: the map is moved channels-last before the mixer, so its layer scale
        # broadcasts over the last dimension as for tokens
        self.maps = channels_first
        self.prefix = prefix
        self.gated = gate != "none"
        self.fc1 = nn.Linear(dim, 2 * hidden if self.gated else hidden, bias=bias)
        self.relu = nn.ReLU() if dwconv_relu else None
        self.dwconv = nn.Conv2d(hidden, hidden, dwconv, padding=dwconv // 2, groups=hidden) if dwconv else None
        self.act = make_act("silu" if self.gated else act)
        self.gate_norm = nn.LayerNorm(hidden, eps=norm_eps("layer", mixer.get("norm_eps"))) if gate_norm else None
        if self.gated:  # the gate's ops over the hidden are not cheap to recompute (recompute.py)
            self.recompute = False
        dim_out = dim_out or dim
        self.fc2 = nn.Linear(hidden, dim_out, bias=bias)
        # a wider output: the residual is a projection of the normed input (MViTv2)
        self.shortcut = nn.Linear(dim, dim_out) if dim_out != dim and self.residual else None
        if dim_out != dim and self.gamma is not None:
            self.gamma = nn.Parameter(torch.full((dim_out,), float(mixer["layer_scale"])))
        self.drop = nn.Dropout(dropout) if dropout > 0 else None
        self.out_dropout = out_dropout
        self.fc1_norm = self.fc2_norm = None
        if proj_norm == "batch":
            self.fc1_norm, self.fc2_norm = BatchNormLast(hidden), BatchNormLast(dim_out)
            nn.init.zeros_(self.fc2_norm.weight)

    @property
    def adds_in_product(self) -> bool:
        return self.fc2_norm is None and self.shortcut is None

    def mix(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.fc1_norm is None and self.dwconv is None and not self.gated:
            x = linear(x, self.fc1, self.act)
        else:
            x = self.expand(x)
        if self.drop is not None:
            x = self.drop(x)
        if self.gate_norm is not None:
            x = self.gate_norm(x)
        x = linear(x, self.fc2, residual=residual)
        if self.fc2_norm is not None:
            x = self.fc2_norm(x)
        if self.drop is not None and self.out_dropout:
            x = self.drop(x)
        return x

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """fc1, its norm, the depthwise convolution and the activation or gate: the hidden tensor."""
        x = linear(x, self.fc1)
        if self.fc1_norm is not None:
            x = self.fc1_norm(x)
        if self.dwconv is not None:  # x: a channels-last map (B, H, W, hidden)
            x = depthwise(x if self.relu is None else self.relu(x), self.dwconv)
        if self.gated:
            gate, x = x.chunk(2, dim=-1)
            return self.act(gate) * x
        return self.act(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.maps:
            return self.sliced(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.prefix is not None:
            return torch.cat((self.block(x[:, :self.prefix]), x[:, self.prefix:]), dim=1)
        return self.sliced(x)

    def block(self, x: torch.Tensor) -> torch.Tensor:
        """The residual block on (..., C) tokens."""
        if self.shortcut is not None:
            xn = self.norm(x) if self.norm is not None else x
            return self.shortcut(xn) + self.branch(self.mix(xn))
        return super().forward(x)

    def recomputes(self, x: torch.Tensor) -> bool:
        # the batch norms (proj_norm) would be kept whole: one pass keeps as much
        return self.fc1_norm is None and super().recomputes(x)

    def recomputed_mix(self, x: torch.Tensor) -> torch.Tensor:
        step = self.train_slice_step(x)
        if step is None:
            return super().recomputed_mix(x)
        flat = x if self.dwconv is not None else x.reshape(-1, x.shape[-1])
        # split, not indexing: backward then joins the slices' gradients once, where each slice's indexing would
        # spread its gradient over a zero tensor of the whole input, and the sum add those up
        out = torch.cat([super(MLP, self).recomputed_mix(part) for part in flat.split(step)])
        return out.view(*x.shape[:-1], out.shape[-1])

    def train_slice_step(self, x: torch.Tensor) -> int | None:
        """Tokens or images per slice of a recomputing call on ``x`` (training, see TRAIN_SLICE_BYTES), else
        None. Only where a slice computes what its rows of one pass would: every op before the residual acts on
        each token (or, with the depthwise conv, each image) alone, so no batch norm and no dropout (whose masks
        would be drawn per slice); the layer scale, drop path and residual see the whole tensor."""
        if x.device.type != "cpu" or self.drop is not None or isinstance(self.norm, BatchNormLast):
            return None
        return self._step(x, TRAIN_SLICE_BYTES)

    def _step(self, x: torch.Tensor, slice_bytes: int) -> int | None:
        """Tokens, or images with the depthwise conv, per slice of ``slice_bytes`` of hidden, if ``x``'s hidden
        is over SLICE_ABOVE and takes more than one slice."""
        hidden = self.fc1.out_features * x.element_size()  # bytes of hidden per token
        if x.numel() // x.shape[-1] * hidden <= SLICE_ABOVE:
            return None
        if self.dwconv is None:
            step, items = max(SLICE_ROWS, slice_bytes // hidden), x.numel() // x.shape[-1]
        else:
            step, items = max(1, slice_bytes // (x[0].numel() // x.shape[-1] * hidden)), x.shape[0]
        return step if step < items else None  # one slice would only copy

    def last_weight(self) -> torch.Tensor:
        return self.fc2.weight

    def slice_step(self, x: torch.Tensor) -> int | None:
        """Tokens (row-wise) or images (with the depthwise conv: ``x`` a (B, H, W, C) map) per slice when ``x``
        goes through in slices (see SLICE_BYTES), else None. Only in inference (eval mode, no gradients) on CPU,
        never while compiling or tracing."""
        return self._step(x, SLICE_BYTES) if eager_cpu_inference(self, x) else None

    def sliced(self, x: torch.Tensor) -> torch.Tensor:
        step = self.slice_step(x)
        if step is None:
            return self.block(x)
        flat = x if self.dwconv is not None else x.reshape(-1, x.shape[-1])
        first = self.block(flat[:step])
        # the first slice's dtype, not x's: under autocast one pass gives what the last op gives
        out = first.new_empty(*flat.shape[:-1], first.shape[-1])
        out[:step] = first
        for start in range(step, flat.shape[0], step):
            out[start:start + step] = self.block(flat[start:start + step])
        return out.view(*x.shape[:-1], out.shape[-1])
