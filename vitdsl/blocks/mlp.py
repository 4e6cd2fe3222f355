"""The feed-forward block: two projections with an activation between, as a residual mixer."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from .base import Activation, MixerSpec, linear_params, need, register
from .shape import Shape


@register
class MLP(MixerSpec):
    """Feed-forward network: Linear → activation → dropout → Linear → dropout.

    Applied to every token, or to every position of a feature map over its channels.
    """

    block = "mlp"
    takes = ("tokens", "image", "vector", "packed")
    family = "mlp"
    on_padding = "keep"

    hidden: PositiveInt | None = Field(None, description="Hidden width. When unset: mult × width.")
    dim: PositiveInt | None = Field(
        None, description="Output width; the input's when unset. A different one on tokens makes the residual a "
                          "Linear, with bias, of the normed input (MViTv2's last block of a stage where the "
                          "attention keeps the width, as its code and timm's have it).")
    mult: float = Field(4.0, gt=0, description="Hidden width as a multiple of the width (when hidden is unset).")
    act: Activation = Field("gelu", description="Activation between the projections.")
    bias: bool = Field(True, description="Biases in both projections.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout after the activation and after the output.")
    tokens: Literal["all", "prefix"] = Field("all", description="prefix: only the special tokens leading the "
                                             "sequence go through (CaiT's class-attention stage); the rest "
                                             "pass unchanged.")
    out_dropout: bool = Field(True, description="Dropout after the output projection too; false: only after the "
                              "activation (vit-pytorch's RegionViT feed-forward).")
    proj_norm: Literal["none", "batch"] = Field(
        "none", description="batch: each projection is followed by BatchNorm over its outputs (LeViT's Linear-BN, "
                            "with bias: false as there), the second's γ starting at 0 so that a fresh residual "
                            "block adds nothing.")
    dwconv: PositiveInt | None = Field(
        None, description="Feature maps: a k×k depthwise convolution (with bias, zero padding k // 2) on the hidden "
                          "map between the first projection and the activation (PVT v2's MLP); k odd. None: no "
                          "convolution.")
    dwconv_relu: bool = Field(False, description="dwconv set: a ReLU before the depthwise convolution too (PVT v2's "
                              "linear variant, b2_li).")

    gate: Literal["none", "swiglu"] = Field(
        "none", description="swiglu: a gated linear unit (Shazeer, 2020): the first projection gives twice the hidden "
                            "width, a gate (first half) and a value (second half), and SiLU(gate) · value goes on "
                            "(EVA-02, timm's GluMlp and SwiGLU); act is then unused. hidden is the gated width.")
    gate_norm: bool = Field(False, description="swiglu: a LayerNorm over the gated hidden width before the second "
                            "projection (EVA-02-B/L's scale_mlp, after NormFormer); its eps is norm_eps.")

    def row_rule(self, x: Shape) -> str | None:
        # a convolution mixes neighbours, batch statistics (training) every row
        plain = self.dwconv is None and self.proj_norm == "none" and self.norm_type != "batch"
        return "row" if x.kind == "tokens" and self.tokens == "all" and plain else None

    def out_dim(self, x: Shape) -> int:
        return self.dim or x.features

    def infer(self, x: Shape) -> Shape:
        if self.out_dim(x) != x.features:
            need(x.kind == "tokens" and self.norm != "post" and self.tokens == "all",
                 f"mlp dim {self.dim} changes the width ({x.features}) with a projected residual, which takes "
                 f"tokens, all of them, and norm pre or none", "drop dim, or place the mlp on tokens")
        need(self.gate != "none" or not self.gate_norm, "gate_norm normalises the gated product, but the mlp has "
             "no gate", "set gate: swiglu, or drop gate_norm")
        need(self.gate == "none" or self.proj_norm == "none", "proj_norm (LeViT's Linear-BN) and gate are not "
             "combined", "drop one of them")
        need(self.hidden_dim(x.features) >= 1, f"mult {self.mult} of the width {x.features} gives a hidden width "
             "of 0", "raise mult, or set hidden")
        if self.tokens == "prefix":
            need(x.kind == "tokens" and x.prefix >= 1, "'tokens: prefix' needs special tokens leading a sequence",
                 "add a tokens block before it, or drop the option")
        if self.dwconv is not None:
            need(x.kind == "image", f"'dwconv: {self.dwconv}' convolves the hidden feature map, but the input is "
                 f"{x.kind}", "place the mlp where the input is a feature map (C, H, W), or drop dwconv")
            need(self.dwconv % 2 == 1, f"dwconv must be odd so that padding keeps the map, got {self.dwconv}")
        need(self.dwconv is not None or not self.dwconv_relu, "dwconv_relu adds a ReLU before the depthwise "
             "convolution, but dwconv is unset", "set dwconv, or drop dwconv_relu")
        return x.with_features(self.out_dim(x))

    def hidden_dim(self, dim: int) -> int:
        return self.hidden if self.hidden is not None else int(dim * self.mult)

    def count_params(self, x: Shape) -> int:
        d, h, o = x.features, self.hidden_dim(x.features), self.out_dim(x)
        norms = 2 * (h + o) if self.proj_norm == "batch" else 2 * h if self.gate_norm else 0
        fc1 = linear_params(d, 2 * h if self.gate != "none" else h, self.bias)
        conv = h * (self.dwconv ** 2 + 1) if self.dwconv is not None else 0
        # a wider output: its residual's projection, and the layer scale of the output width
        wider = (linear_params(d, o) if self.residual else 0) + (o - d if self.layer_scale is not None else 0) \
            if o != d else 0
        return fc1 + linear_params(h, o, self.bias) + norms + conv + self.mixer_params(d) + wider

    def flops(self, x: Shape) -> int:
        positions = x.prefix if self.tokens == "prefix" else x.numel // x.features
        d, h, o = x.features, self.hidden_dim(x.features), self.out_dim(x)
        fc1 = 2 * positions * d * h * (2 if self.gate != "none" else 1)  # the gate's projection doubles it
        conv = 2 * positions * h * self.dwconv ** 2 if self.dwconv is not None else 0
        shortcut = 2 * positions * d * o if o != d and self.residual else 0
        return fc1 + 2 * positions * h * o + conv + shortcut

    def pattern(self, x: Shape) -> str:
        return "" if self.gate == "none" else self.gate + (", norm" if self.gate_norm else "")

    def build(self, x: Shape):
        from .modules.mlp import MLP

        return MLP(x.features, self.hidden_dim(x.features), self.act, self.bias, self.dropout,
                   channels_first=x.kind == "image", prefix=x.prefix if self.tokens == "prefix" else None,
                   out_dropout=self.out_dropout, proj_norm=self.proj_norm, dwconv=self.dwconv,
                   dwconv_relu=self.dwconv_relu, gate=self.gate, gate_norm=self.gate_norm, dim_out=self.out_dim(x),
                   **self.mixer_kwargs())
