"""Blocks that turn pixels into tokens and give tokens their positions: patchify, pos-embed, tokens."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from .base import BlockSpec, divisors_hint, fmt_pair, linear_params, need, norm_params, pair, register
from .shape import Shape

PatchNorm = Literal["none", "layer", "layer-nobias"]


@register
class Patchify(BlockSpec):
    """Cut an image into patches and project each patch vector to a token.

    Patches do not overlap unless ``stride`` is set: then they are taken as ``nn.Unfold`` takes them
    (with zero ``padding``), and the grid side is ⌊(size − patch + 2·padding) / stride⌋ + 1, leftover
    rows and columns dropped. Tokens that carry a 2-D patch grid and no special tokens are folded back
    into that map first (T2T's soft split). Without ``dim`` the raw patch vectors are the tokens.

    Output: tokens in row-major patch order, with the patch grid recorded for later blocks. Without
    ``dim`` there is no projection: ``patch: 1`` then just flattens a feature map into one token per
    position (``b c h w -> b (h w) c``, as CCT's tokenizer).
    """

    block = "patchify"
    takes = ("image", "tokens")
    family = "embedding"

    patch: PositiveInt | tuple[PositiveInt, PositiveInt] = Field(
        description="Patch size, one number or [height, width].")
    dim: PositiveInt | None = Field(None, description="Token width after the projection; when unset, no "
                                                      "projection: the patch vectors (C·patch²) are the tokens.")
    order: Literal["hwc", "chw"] = Field(
        "hwc", description="Order of a patch's values before the projection: hwc = (p1 p2 c) as in "
                           "ViT/timm-style rearranges, chw = (c p1 p2) as nn.Unfold gives.")
    pre_norm: PatchNorm = Field("none", description="Norm of the raw patch vector before the projection.")
    post_norm: PatchNorm = Field("none", description="Norm of the token after the projection.")
    bias: bool = Field(True, description="Bias in the projection.")
    shift: NonNegativeInt = Field(0, description="Shifted patch tokenization (SPT): when > 0, the image is "
                                  "joined along channels with 4 copies shifted by this many pixels (right, left, "
                                  "down, up, zero-filled), so patch vectors hold 5 × channels values.")
    stride: PositiveInt | tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="Step between patches, one number or [height, width]; smaller than the patch "
                          "makes them overlap. When unset: the patch size, and the image must divide into patches.")
    padding: NonNegativeInt | tuple[NonNegativeInt, NonNegativeInt] = Field(
        0, description="Zeros added on each side of the map before cutting; then the "
                          "nn.Unfold rule applies, with stride = patch when stride is unset.")
    output: Literal["tokens", "map"] = Field(
        "tokens", description="tokens: a sequence that carries its patch grid; map: a feature map (dim, grid "
                              "height, grid width), as the stage patch embeddings of hierarchical models on maps "
                              "(Twins, NesT).")

    @model_validator(mode="after")
    def _projection(self):
        if self.dim is None and self.post_norm != "none":
            raise ValueError("post_norm needs a projection: set dim, or drop post_norm")
        return self

    def unfolds(self) -> bool:
        return self.stride is not None or pair(self.padding) != (0, 0)

    def source(self, x: Shape) -> tuple[str, int, int]:
        """(what the map is called, height, width) of the map the patches are cut from."""
        if x.kind == "image":
            return "image", *x.dims[1:]
        n = x.dims[0]
        need(x.grid is not None and len(x.grid) == 2,
             "patchify on tokens needs tokens that carry a 2-D patch grid, to fold them back into a map, "
             "but these carry none", "patchify the image itself, or tokens that come from patchify")
        need(x.prefix == 0, f"patchify on tokens folds the patch grid back into a map, but {x.prefix} special "
             "token(s) lead the sequence", "put the tokens block after the last patchify")
        need(x.suffix == 0, f"patchify on tokens folds the patch grid back into a map, but {x.suffix} special token(s) trail the sequence",
             "put the tokens block after the last patchify")
        gh, gw = x.grid
        need(n == gh * gw, f"patchify on tokens: {n} tokens do not fill the {gh}×{gw} patch grid")
        return "token grid", gh, gw

    def grid(self, x: Shape) -> tuple[int, int]:
        what, h, w = self.source(x)
        ph, pw = pair(self.patch)
        need(self.shift < min(h, w), f"shift {self.shift} must be smaller than the {what} ({h}×{w})",
             "shift by a few pixels; vit-pytorch's SPT uses 1")
        if not self.unfolds():
            need(h % ph == 0, f"{what} height {h} is not divisible by the patch height {ph}",
                 divisors_hint(h, ph, "heights"))
            need(w % pw == 0, f"{what} width {w} is not divisible by the patch width {pw}",
                 divisors_hint(w, pw, "widths"))
            return h // ph, w // pw
        stride, pad = pair(self.stride or self.patch), pair(self.padding)
        out = []
        for side, size, k, s, p in (("height", h, ph, stride[0], pad[0]), ("width", w, pw, stride[1], pad[1])):
            need(size + 2 * p >= k, f"patch {side} {k} does not fit the {what} {side} {size} padded by {p} "
                 f"on each side ({size} + 2·{p} = {size + 2 * p} < {k})",
                 f"use a patch {side} of at most {size + 2 * p}, or more padding")
            out.append((size + 2 * p - k) // s + 1)
        return out[0], out[1]

    def patch_dim(self, x: Shape) -> int:
        ph, pw = pair(self.patch)
        return x.features * (5 if self.shift else 1) * ph * pw

    def width(self, x: Shape) -> int:
        return self.dim if self.dim is not None else self.patch_dim(x)

    def infer(self, x: Shape) -> Shape:
        gh, gw = self.grid(x)
        if self.output == "map":
            return Shape.image(self.width(x), gh, gw)
        return Shape.tokens(gh * gw, self.width(x), grid=(gh, gw))

    def count_params(self, x: Shape) -> int:
        p, d = self.patch_dim(x), self.width(x)
        proj = linear_params(p, d, self.bias) if self.dim is not None else 0
        return norm_params(self.pre_norm, p) + proj + norm_params(self.post_norm, d)

    def flops(self, x: Shape) -> int:
        if self.dim is None:
            return 0
        gh, gw = self.grid(x)
        return 2 * gh * gw * self.patch_dim(x) * self.dim

    def pattern(self, x: Shape) -> str:
        text = f"patch {fmt_pair(pair(self.patch))}"
        if self.unfolds():
            text += f", stride {fmt_pair(pair(self.stride or self.patch))}"
        if pair(self.padding) != (0, 0):
            text += f", padding {fmt_pair(pair(self.padding))}"
        return text

    def build(self, x: Shape):
        from .modules.embed import Patchify

        return Patchify(x.features, pair(self.patch), self.dim, self.order, self.pre_norm, self.post_norm, self.bias,
                        stride=pair(self.stride or self.patch) if self.unfolds() else None,
                        padding=pair(self.padding), grid=x.grid if x.kind == "tokens" else None, shift=self.shift,
                        to_map=self.output == "map")


@register
class PosEmbed(BlockSpec):
    """Add position information to tokens: a learned table, or fixed sine-cosine features.

    ``learned`` covers every token that reaches it (put it after ``tokens`` to give the cls token a
    position too, as ViT does). ``sincos2d`` needs the patch grid and no leading special tokens; it is
    computed, not learned, and is not part of the state_dict. ``sincos1d`` is the 1-D sinusoid of
    the sequence position (CCT's 'sine'), covering every token; it is kept in the state_dict, as a
    frozen parameter or a buffer (``store``). ``none`` adds nothing (only the dropout runs), so a
    parameter can switch positions off.
    """

    block = "pos-embed"
    takes = ("tokens", "packed")
    shorthand = "kind"
    family = "embedding"

    kind: Literal["learned", "sincos2d", "sincos1d", "factorized", "none"] = Field(
        "learned", description="learned: a trained (N, D) table covering every token; "
                               "sincos2d: fixed sine-cosine features of the patch row and column; "
                               "sincos1d: fixed sin/cos of the token index (even features sin, odd cos); "
                               "factorized: learned row (rows, D) and column (columns, D) tables, each patch "
                               "getting row[r] + column[c] — on packed tokens per image (NaViT); "
                               "none: no positions.")
    temperature: float = Field(10000.0, gt=0, description="sincos2d, sincos1d: base of the frequencies.")
    init_std: float = Field(0.02, gt=0, description="learned: standard deviation of the normal initialisation.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the tokens after the addition.")
    unused_rows: NonNegativeInt = Field(0, description="learned: extra table rows after the used ones, never "
                                        "added (vit-pytorch's PatchMerger ViT allocates n+1 rows for n patches).")
    init: Literal["normal", "trunc_normal"] = Field(
        "normal", description="learned: initial distribution, normal or truncated normal (at ±2, as "
                              "torch's trunc_normal_), with standard deviation init_std.")
    store: Literal["parameter", "buffer"] = Field(
        "parameter", description="sincos1d: keep the table as a frozen parameter (counted among the "
                                 "parameters, as CCT) or as a buffer (CCT-3D).")

    @model_validator(mode="after")
    def _rows_need_a_table(self):
        if self.unused_rows and self.kind != "learned":
            raise ValueError(f"unused_rows needs kind: learned (a {self.kind} position has no table)")
        return self

    def infer(self, x: Shape) -> Shape:
        if x.kind == "packed":
            need(self.kind == "factorized", f"packed tokens hold several images, so a {self.kind} position "
                 "table would mix them up", "use kind: factorized, which indexes each image's own grid")
        if self.kind == "factorized":
            need(x.grid is not None and len(x.grid) == 2, "factorized positions need tokens that come from a 2-D "
                 "patch grid", "place pos-embed right after patchify or patchify-packed")
            need(x.prefix == 0, f"factorized positions cover patch tokens only, but {x.prefix} special token(s) "
                 "lead the sequence", "add the tokens block after pos-embed")
        if self.kind == "sincos2d":
            need(x.grid is not None and len(x.grid) == 2,
                 "sincos2d positions need tokens that come from a 2-D patch grid",
                 "place pos-embed right after patchify")
            need(x.prefix == 0, f"sincos2d positions cover patch tokens only, but {x.prefix} special "
                 "token(s) lead the sequence", "add the tokens block after pos-embed")
            need(x.suffix == 0, f"sincos2d positions cover patch tokens only, but {x.suffix} special token(s) trail the sequence",
                 "add the tokens block after pos-embed")
            need(x.features % 4 == 0, f"sincos2d needs a token width divisible by 4, got {x.features}")
        return x

    def count_params(self, x: Shape) -> int:
        if self.kind == "factorized":
            return (x.grid[0] + x.grid[1]) * x.features
        frozen = self.kind == "sincos1d" and self.store == "parameter"
        table = self.kind == "learned" or frozen
        return (x.numel + self.unused_rows * x.features) if table else 0

    def pattern(self, x: Shape) -> str:
        return f"rows {x.grid[0]} + cols {x.grid[1]}" if self.kind == "factorized" else self.kind

    def build(self, x: Shape):
        if self.kind == "factorized":
            from .modules.packed import FactorizedPositions

            return FactorizedPositions(tuple(x.grid), x.features, self.init_std, self.dropout)
        from .modules.embed import LearnedPositions, NoPositions, SinCos1dPositions, SinCos2dPositions

        if self.kind == "learned":
            return LearnedPositions(*x.dims, init_std=self.init_std, dropout=self.dropout, init=self.init,
                                    unused_rows=self.unused_rows)
        if self.kind == "sincos1d":
            return SinCos1dPositions(*x.dims, self.temperature, self.store, dropout=self.dropout)
        if self.kind == "none":
            return NoPositions(self.dropout)
        return SinCos2dPositions(x.grid, x.features, self.temperature, dropout=self.dropout)


@register
class Tokens(BlockSpec):
    """Prepend learned special tokens (class tokens) to the sequence, or append them (``position: last``,
    e.g. DeiT's distillation token, appended after the positions so that it gets none)."""

    block = "tokens"
    takes = ("tokens",)
    shorthand = "cls"
    family = "embedding"

    cls: PositiveInt = Field(1, description="How many learned class tokens to prepend.")
    init_std: float = Field(1.0, gt=0, description="Standard deviation of the normal initialisation.")
    position: Literal["first", "last"] = Field(
        "first", description="first: prepend (leading special tokens); last: append (trailing special tokens, "
                             "which blocks that need the patch grid refuse and 'pool: last' reads).")

    def infer(self, x: Shape) -> Shape:
        n, d = x.dims
        if self.position == "last":
            return Shape.tokens(n + self.cls, d, grid=x.grid, prefix=x.prefix, suffix=x.suffix + self.cls)
        return Shape.tokens(n + self.cls, d, grid=x.grid, prefix=x.prefix + self.cls, suffix=x.suffix)

    def count_params(self, x: Shape) -> int:
        return self.cls * x.features

    def pattern(self, x: Shape) -> str:
        return f"+{self.cls} cls" + (" (last)" if self.position == "last" else "")

    def build(self, x: Shape):
        from .modules.embed import ClassTokens

        return ClassTokens(self.cls, x.features, self.init_std, append=self.position == "last")
