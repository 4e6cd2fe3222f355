"""Blocks at the end of a network, and the small glue ones: norm, pool, head, merge."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from .base import Activation, BlockSpec, NormType, linear_params, need, norm_eps_field, norm_params, register
from .shape import Shape


@register
class Norm(BlockSpec):
    """A normalisation over features: of each token, of each vector, or over the channels of each
    position of a feature map."""

    block = "norm"
    takes = ("tokens", "image", "vector", "packed")
    shorthand = "type"
    family = "misc"
    on_padding = "keep"

    type: NormType | Literal["l2"] = Field(
        "layer", description="layer: LayerNorm; layer-nobias: LayerNorm without bias; rms: RMSNorm; batch: "
                             "BatchNorm over the features; l2: divide by the Euclidean length (at least 1e-6), "
                             "no weights (DINO's projector).")
    norm_eps: float | None = norm_eps_field("the norm (l2 keeps its 1e-6 floor)")
    tokens: Literal["all", "prefix"] = Field("all", description="prefix: only the special tokens leading the "
                                             "sequence are normalised, the others pass unchanged (XCiT-nano's "
                                             "class attention: tokens_norm off).")

    def infer(self, x: Shape) -> Shape:
        need(self.tokens == "all" or (x.kind == "tokens" and x.prefix >= 1), "norm with tokens: prefix needs "
             "special tokens leading the sequence", "add a tokens block before it, or set tokens: all")
        return x

    def row_rule(self, x: Shape) -> str | None:
        # batch statistics in training mix the rows
        return "row" if x.kind == "tokens" and self.tokens == "all" and self.type != "batch" else None

    def count_params(self, x: Shape) -> int:
        if self.type == "l2":
            return 0
        return 2 * x.features if self.type == "batch" else norm_params(self.type, x.features)

    def pattern(self, x: Shape) -> str:
        return "l2" if self.type == "l2" else ""  # the one norm without weights

    def build(self, x: Shape):
        from .modules.common import FeatureNorm, make_norm

        if x.kind == "image":
            return FeatureNorm(self.type, x.features, channels_first=True, eps=self.norm_eps)
        if self.tokens == "prefix":
            from .modules.heads import PrefixNorm

            return PrefixNorm(make_norm(self.type, x.features, self.norm_eps), x.prefix)
        return make_norm(self.type, x.features, self.norm_eps)


@register
class Pool(BlockSpec):
    """Reduce tokens or a feature map to one vector: the first (cls) token, the last token, the mean, or a
    learned weighted sum (``seq``: CCT's sequence pooling, softmax over positions of a Linear(D → 1) score).
    ``mean`` and ``seq`` leave out trailing special tokens (a distillation token), as vit-pytorch does; ``mean``
    leaves out the leading ones (cls, registers) too (``over: patches``, timm's avg pool: the registers are
    discarded at the output, as Darcet et al. do), or averages them in (``over: all``, vit-pytorch's mean pool,
    which the vit-pytorch overlay selects)."""

    block = "pool"
    capabilities = frozenset({"readout"})
    takes = ("tokens", "image")
    shorthand = "mode"
    family = "head"
    on_padding = "drop"

    mode: Literal["cls", "mean", "seq", "last"] = Field(
        "mean", description="cls: the first token; mean: the average of all tokens (or of all positions "
                            "of a map); seq: the sum of all tokens (positions) weighted by a softmax over "
                            "a learned linear score of each; last: the last token (a trailing special token "
                            "appended by 'tokens: {position: last}').")
    index: int = Field(0, ge=0, description="cls: which special token to take, counting from 0 (a backbone's "
                                            "own cls behind an adapter's task token is 1).")
    over: Literal["all", "patches"] = Field(
        "patches", description="mean: the tokens averaged. patches: the patch tokens only, the leading cls and "
                               "registers left out (the papers' and timm's global_pool 'avg': RoPE-ViT's reg/gap "
                               "models, EVA-02); all: every token but trailing special ones (vit-pytorch's mean "
                               "pool, its class token included: the vit-pytorch overlay's).")

    def infer(self, x: Shape) -> Shape:
        if self.mode == "cls":
            need(x.kind == "tokens", "'pool: cls' takes tokens, but a feature map reaches it",
                 "use pool: mean on feature maps")
            need(x.prefix >= 1, "'pool: cls' needs a class token, but no tokens block comes before it",
                 "add '- tokens: {cls: 1}' after patchify, or use pool: mean")
            need(self.index < x.prefix, f"'pool: cls' takes special token {self.index}, but only {x.prefix} "
                 "lead the sequence", "index counts the tokens added by tokens blocks, from 0")
        else:
            need(self.index == 0, f"pool index {self.index} is for mode cls, not {self.mode}", "remove index")
        written = "over" in self.model_fields_set  # the default (patches) asks for nothing a block cannot do
        need(not written or self.over == "all" or self.mode == "mean",
             f"over: patches is for mode mean, not {self.mode}", "remove over")
        need(not written or self.over == "all" or x.kind == "tokens", "'pool: {mode: mean, over: patches}' takes "
             "tokens, but a feature map reaches it", "a map has no special tokens: remove over")
        if self.mode == "last":
            need(x.kind == "tokens" and x.suffix >= 1, "'pool: last' needs a trailing special token, but none "
                 "ends the sequence", "append one with '- tokens: {cls: 1, position: last}'")
        return Shape.vector(x.features)

    def rows_read(self, x: Shape) -> int | None:
        return self.index + 1 if self.mode == "cls" else None

    def count_params(self, x: Shape) -> int:
        return linear_params(x.features, 1) if self.mode == "seq" else 0

    def flops(self, x: Shape) -> int:
        # the score (D → 1) and the weighted sum, each a product over positions × features
        return 4 * (x.numel - x.suffix * x.features) if self.mode == "seq" else 0

    def pattern(self, x: Shape) -> str:
        return self.mode + (" of patches" if self.leaves_out(x) else "")

    def leaves_out(self, x: Shape) -> bool:
        """Whether the mean leaves out leading special tokens (there are some, and over is patches)."""
        return self.mode == "mean" and self.over == "patches" and x.kind == "tokens" and x.prefix > 0

    def build(self, x: Shape):
        from .modules.heads import Pool

        return Pool(self.mode, x.kind, x.features, self.index, suffix=x.suffix,
                    prefix=x.prefix if self.leaves_out(x) else 0)


@register
class Head(BlockSpec):
    """Classifier: an optional norm, an optional pre-logits layer (Linear → tanh), then a linear map to the
    class logits (optionally followed by an activation: a hidden layer of a projector)."""

    block = "head"
    capabilities = frozenset({"readout", "classifier"})
    on_padding = "keep"
    takes = ("vector", "tokens")
    shorthand = "classes"
    family = "head"

    classes: PositiveInt = Field(description="Number of outputs.")
    norm: Literal["none", "layer", "layer-nobias", "batch"] = Field(
        "none", description="Norm before the linear map (batch: BatchNorm over the features, LeViT's head).")
    norm_eps: float | None = norm_eps_field("the norm before the linear map")
    bias: bool = Field(True, description="Bias in the linear map.")
    act: Activation | Literal["none"] = Field("none", description="Activation after the linear map (the hidden "
                                              "layers of a projector: Linear → GELU).")
    pre_logits: PositiveInt | None = Field(None, description="Width of a pre-logits layer between the norm and the "
                                           "linear map: Linear (with bias) → tanh (MaxViT's code, timm's "
                                           "maxvit_*_tf: the last stage's width; the ViT paper's representation "
                                           "layer); none when unset.")

    def infer(self, x: Shape) -> Shape:
        return x.with_features(self.classes)

    def count_params(self, x: Shape) -> int:
        width = self.pre_logits or x.features
        hidden = linear_params(x.features, width) if self.pre_logits else 0
        return norm_params(self.norm, x.features) + hidden + linear_params(width, self.classes, self.bias)

    def flops(self, x: Shape) -> int:
        hidden = x.features * self.pre_logits if self.pre_logits else 0
        return 2 * (x.numel // x.features) * (hidden + (self.pre_logits or x.features) * self.classes)

    def pattern(self, x: Shape) -> str:
        return "" if self.act == "none" else self.act

    def build(self, x: Shape):
        from .modules.heads import Head

        return Head(x.features, self.classes, self.norm, self.bias, self.act, self.norm_eps, self.pre_logits)


@register
class Merge(BlockSpec):
    """Join several branches (named with ``from:``): add or average them, concatenate their features, or join them
    into one sequence (``sequence``): every input but the last becomes leading special tokens of the
    last, which keeps its patch grid; feature maps count as their positions, row-major. When the first
    of two inputs carries a 2-D grid of its own, the special tokens remember it (RegionViT's region
    tokens: one per window of the last input's grid, read by ``region-attn``)."""

    block = "merge"
    takes = ("tokens", "image", "vector", "volume")
    arity = (2, None)
    shorthand = "mode"
    family = "misc"

    mode: Literal["add", "mean", "concat", "sequence"] = Field(
        "add", description="add: element-wise sum; mean: element-wise average (DeiT's and PiT's class and "
                           "distillation heads at inference, as timm has them); concat: join features; sequence: "
                           "join along the sequence, the inputs before the last becoming its leading special tokens.")

    def infer(self, *xs: Shape) -> Shape:
        if self.mode == "sequence":
            return self.sequence(*xs)
        first = xs[0]
        for i, x in enumerate(xs[1:], 1):
            need(x.kind == first.kind, f"merge input {i} is {x.kind} but input 0 is {first.kind}")
            if self.mode in ("add", "mean"):
                need(x.dims == first.dims, f"merge: {self.mode} needs equal shapes, got {first} and {x}",
                     "project one branch to the other's width, or use mode: concat")
            else:
                rest = lambda s: s.dims[1:] if s.kind in ("image", "volume") else s.dims[:-1]  # noqa: E731
                need(rest(x) == rest(first), f"merge: concat needs equal sizes except features, got {first} and {x}")
        if self.mode in ("add", "mean"):
            return first
        return first.with_features(sum(x.features for x in xs))

    def sequence(self, *xs: Shape) -> Shape:
        *special, last = xs
        for i, x in enumerate(xs):
            need(x.kind in ("tokens", "image"), f"merge: sequence joins tokens and feature maps, but input {i} is "
                 f"{x.kind}")
            need(x.features == last.features, f"merge: sequence needs one width, but input {i} has {x.features} "
                 f"features and input {len(xs) - 1} {last.features}", "project one branch to the other's width")
        count = sum(x.dims[0] if x.kind == "tokens" else x.dims[1] * x.dims[2] for x in special)
        grid = lambda s: tuple(s.dims[1:]) if s.kind == "image" else s.grid  # noqa: E731
        first = xs[0]
        regions = (grid(first) if len(xs) == 2 and grid(first) is not None and len(grid(first)) == 2
                   and not first.prefix and not first.suffix and not last.prefix else None)
        n = count + (last.dims[0] if last.kind == "tokens" else last.dims[1] * last.dims[2])
        return Shape("tokens", (n, last.features), grid(last), count + last.prefix, last.suffix, prefix_grid=regions)

    def pattern(self, *xs: Shape) -> str:
        if self.mode != "sequence":
            return ""
        out = self.sequence(*xs)
        return f"{out.prefix} special + {out.dims[0] - out.prefix}"

    def build(self, *xs: Shape):
        from .modules.heads import Merge

        if self.mode == "sequence":
            return Merge(self.mode, "tokens", flatten=tuple(x.kind == "image" for x in xs))
        return Merge(self.mode, "image" if xs[0].kind in ("image", "volume") else "tokens")
