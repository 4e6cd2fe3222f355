"""Convolutional blocks on feature maps: conv-stem (a stack of conv-norm-act) and mbconv."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from .base import Activation, BlockSpec, need, norm_eps_field, register
from .shape import Shape

ConvNorm = Literal["none", "batch", "layer"]
SAME = "same"  # TensorFlow's SAME padding: ceil(size / stride) out, the odd pixel of padding at the bottom/right


def conv_out(size: int, kernel: int, stride: int, padding: int | str) -> int:
    if padding == SAME:
        return -(-size // stride)
    return (size + 2 * padding - kernel) // stride + 1


def pool_out(size: int, kernel: int, stride: int, padding: int | str) -> int:
    """A max-pool's output side; ``padding`` "same" is TensorFlow's: ⌈size / stride⌉ whatever the kernel."""
    return conv_out(size, kernel, stride, padding)


def conv_params(cin: int, cout: int, k: int, groups: int = 1, bias: bool = True) -> int:
    return cout * (cin // groups) * k * k + (cout if bias else 0)


@register
class ConvStem(BlockSpec):
    """A stack of 2-D convolutions, each optionally followed by a norm and an activation.

    Layer i maps to ``channels[i]`` channels with ``kernel[i]`` and ``stride[i]``; a single kernel
    or stride applies to every layer. Padding is kernel // 2 unless given. With ``pool`` each layer
    ends in a max-pool (CCT's tokenizer: conv → ReLU → max-pool).

    On a volume (C, T, H, W) the convolutions are 3-D, ``frame_kernel`` × kernel × kernel with
    ``frame_stride`` and ``frame_padding`` along the frames, and the max-pool leaves the frames alone
    (CCT-3D's tokenizer); it gives a volume. With ``frames: groups`` each frame is instead an image of
    its own, convolved in 2-D: the block gives images, one group per frame (folded into the batch),
    so any image encoder that follows runs frame by frame.
    """

    block = "conv-stem"
    takes = ("image", "volume")
    family = "convolution"
    regroups = True

    channels: list[PositiveInt] = Field(min_length=1, description="Output channels of each convolution.")
    kernel: PositiveInt | list[PositiveInt] = Field(3, description="Kernel size, one for all or one per layer.")
    stride: PositiveInt | list[PositiveInt] = Field(1, description="Stride, one for all or one per layer.")
    padding: NonNegativeInt | list[NonNegativeInt] | Literal["same"] | None = Field(
        None, description="Zero padding, one for all or one per layer; kernel // 2 when unset. same: TensorFlow's "
                          "SAME padding, ceil(size / stride) out, with the odd pixel at the bottom and right (MaxViT's "
                          "TensorFlow weights: a stride-2 3×3 convolution of an even map pads only there).")
    bias: bool = Field(True, description="Bias in each convolution.")
    norm: ConvNorm = Field("none", description="Norm after each convolution (batch or channel layer norm).")
    act: Activation | Literal["none"] = Field("none", description="Activation after each convolution.")
    last_act: bool = Field(True, description="Whether the last convolution is followed by the norm and "
                                             "activation too.")
    last_norm: bool = Field(False, description="With last_act false: the last convolution keeps its norm, only "
                            "the activation is left out (XCiT's patch embedding: conv-BN-GELU, ..., conv-BN).")
    pool: PositiveInt | None = Field(None, description="Kernel of a max-pool after each convolution (after its "
                                     "norm and activation, as CCT's tokenizer); no pooling when unset.")
    pool_stride: PositiveInt | None = Field(None, description="Stride of the max-pool; its kernel when unset.")
    pool_padding: NonNegativeInt | Literal["same"] = Field(
        0, description="Padding of the max-pool, on each side (at most half its kernel); same: TensorFlow's SAME, "
                       "⌈side / stride⌉ outputs, the missing rows and columns padded with -inf, the odd one after "
                       "(NesT's JAX code, and timm's _jx models of it: on an even map 0 before and 1 after, not "
                       "PyTorch's 1 on each side). Images only.")
    norm_eps: float | None = norm_eps_field("the norms")
    init: Literal["default", "kaiming"] = Field(
        "default", description="Initial convolution weights: default = PyTorch's (kaiming uniform, a=√5); "
                               "kaiming = kaiming normal (fan in, ReLU gain), as CCT's tokenizer.")
    frames: Literal["volume", "groups"] = Field(
        "volume", description="Volumes: volume = 3-D convolutions over frames, rows and columns, giving a volume; "
                              "groups = 2-D convolutions of each frame on its own, giving images with one group "
                              "per frame.")
    frame_kernel: PositiveInt = Field(1, description="Volumes, frames: volume: the kernel's extent along the "
                                      "frames (CCT-3D: 3).")
    frame_stride: PositiveInt = Field(1, description="Volumes, frames: volume: the stride along the frames.")
    frame_padding: NonNegativeInt | None = Field(None, description="Volumes, frames: volume: zero frames added "
                                                 "on each side; frame_kernel // 2 when unset.")
    resize: PositiveInt | None = Field(None, description="Images: first resize the image to resize × resize "
                                       "(bicubic, corners not aligned) unless it is that size already; CrossViT's "
                                       "large-patch stream sees its 240 input at 224 (its code and timm).")

    @model_validator(mode="after")
    def _lengths(self):
        n = len(self.channels)
        for name in ("kernel", "stride", "padding"):  # "same" is one padding for all
            v = getattr(self, name)
            if isinstance(v, list) and len(v) != n:
                raise ValueError(f"{name} has {len(v)} entries for {n} convolutions")
        if self.pool is None and (self.pool_stride is not None or self.pool_padding):
            raise ValueError("pool_stride and pool_padding need a pool kernel: set pool")
        if self.pool is not None and self.pool_padding != "same" and self.pool_padding > self.pool // 2:
            raise ValueError(f"pool_padding {self.pool_padding} is more than half the pool kernel {self.pool} "
                             "(max-pool would pad with -inf only windows)")
        return self

    def pooling(self) -> tuple[int, int, int | str] | None:
        """(kernel, stride, padding) of the max-pool after each convolution, or None."""
        if self.pool is None:
            return None
        return self.pool, self.pool_stride or self.pool, self.pool_padding

    def layers(self) -> list[tuple[int, int, int, int]]:
        """(channels, kernel, stride, padding) per convolution."""
        n = len(self.channels)
        per = lambda v: v if isinstance(v, list) else [v] * n  # noqa: E731
        ks, ss = per(self.kernel), per(self.stride)
        ps = per(self.padding) if self.padding is not None else [k // 2 for k in ks]
        return list(zip(self.channels, ks, ss, ps))

    def pooled(self, h: int, w: int) -> tuple[int, int]:
        """A map's size after the max-pool (unchanged without one)."""
        pool = self.pooling()
        return (h, w) if pool is None else (pool_out(h, *pool), pool_out(w, *pool))

    def three_d(self, x: Shape) -> bool:
        """Whether the convolutions are 3-D (a volume, frames: volume), checking the frame options fit."""
        plain = self.frame_kernel == 1 and self.frame_stride == 1 and self.frame_padding is None
        if x.kind != "volume":
            need(plain and self.frames == "volume", "frames, frame_kernel, frame_stride and frame_padding are "
                 "for volumes, but the input is an image", "drop them")
            return False
        need(self.pool_padding != "same" or self.frames == "groups", "pool_padding: same is for images, but a "
             "volume reaches conv-stem", "give a number, or set frames: groups")
        need(plain or self.frames == "volume", "frame_kernel, frame_stride and frame_padding shape 3-D "
             "convolutions, but frames: groups convolves each frame on its own", "drop them, or set frames: volume")
        need(self.frames == "groups" or self.padding != SAME, "padding: same is for 2-D convolutions, but a volume "
             "reaches 3-D ones", "give the padding in pixels, or set frames: groups")
        return self.frames == "volume"

    def frame_counts(self, x: Shape) -> list[int]:
        """Frames after each 3-D convolution (the max-pool keeps them)."""
        t, out = x.dims[1], []
        pad = self.frame_kernel // 2 if self.frame_padding is None else self.frame_padding
        for i in range(len(self.channels)):
            n = conv_out(t, self.frame_kernel, self.frame_stride, pad)
            need(n > 0, f"convolution {i} (frame kernel {self.frame_kernel}, frame stride {self.frame_stride}) "
                 f"gets {t} frame(s), too few", "use more frames, or a smaller frame kernel or more frame padding")
            out.append(n)
            t = n
        return out

    def resized(self, x: Shape) -> Shape:
        """The input the convolutions see: the image after ``resize``."""
        if self.resize is None:
            return x
        need(x.kind == "image", "resize is for images, but the input is a volume", "drop resize")
        return Shape.image(x.dims[0], self.resize, self.resize).with_groups(x.groups)

    def walk(self, x: Shape):
        x = self.resized(x)
        c, h, w = x.dims[0], *x.dims[-2:]
        for i, (cout, k, s, p) in enumerate(self.layers()):
            oh, ow = conv_out(h, k, s, p), conv_out(w, k, s, p)
            need(oh > 0 and ow > 0, f"convolution {i} (kernel {k}, stride {s}) gets a {h}×{w} map, too small")
            yield c, cout, k, h, w, oh, ow
            c, (h, w) = cout, self.pooled(oh, ow)
            need(h > 0 and w > 0, f"max-pool {i} (kernel {self.pool}) gets a {oh}×{ow} map, too small",
                 "use a larger input, or fewer or less strided convolutions")

    def infer(self, x: Shape) -> Shape:
        three_d = self.three_d(x)
        out = x
        for _, cout, _, _, _, oh, ow in self.walk(x):
            out = Shape.image(cout, *self.pooled(oh, ow))
        if three_d:
            return Shape("volume", (out.dims[0], self.frame_counts(x)[-1], *out.dims[1:]), groups=x.groups)
        return out.with_groups(x.groups * (x.dims[1] if x.kind == "volume" else 1))

    def count_params(self, x: Shape) -> int:
        depth = self.frame_kernel if self.three_d(x) else 1
        n = 0
        for i, (cin, cout, k, *_rest) in enumerate(self.walk(x)):
            n += conv_params(cin, cout, k, bias=False) * depth + (cout if self.bias else 0)
            if self.norm != "none" and (self.last_act or self.last_norm or i < len(self.channels) - 1):
                n += 2 * cout
        return n

    def flops(self, x: Shape) -> int:
        per_frame = [2 * cout * oh * ow * cin * k * k for cin, cout, k, _, _, oh, ow in self.walk(x)]
        if self.three_d(x):
            return sum(f * t * self.frame_kernel for f, t in zip(per_frame, self.frame_counts(x)))
        return sum(per_frame) * (x.dims[1] if x.kind == "volume" else 1)

    def pattern(self, x: Shape) -> str:
        if x.kind != "volume":
            return "" if self.resize is None else f"resized to {self.resize}×{self.resize}"
        return f"3-D, frame kernel {self.frame_kernel}" if self.three_d(x) else "per frame, frames as groups"

    def build(self, x: Shape):
        from .modules.conv import ConvStack

        frame = None
        if self.three_d(x):
            frame = (self.frame_kernel, self.frame_stride,
                     self.frame_kernel // 2 if self.frame_padding is None else self.frame_padding)
        return ConvStack(x.features, self.layers(), self.bias, self.norm, self.act, self.last_act,
                         last_norm=self.last_norm, pool=self.pooling(), init=self.init, frame=frame,
                         fold_frames=x.kind == "volume" and not frame, resize=self.resize, eps=self.norm_eps)


@register
class MBConv(BlockSpec):
    """Inverted residual block (MobileNetV2/EfficientNet, as in MaxViT).

    1×1 expansion → depthwise 3×3 (strided to downsample) → squeeze-excitation → 1×1 projection,
    each convolution followed by batch norm. The residual is added only when the shape is unchanged
    (or, with ``shortcut: pool-conv``, always, through a pooled and projected shortcut).
    MobileNetV2 (MobileViT's MV2): ``act: silu, se: 0, bias: false, expand_from: input``.
    MaxViT's own (its TensorFlow code, timm's ``maxvit_*_tf``): ``norm: pre, bias: false, project_bias: true,
    se_from: output, se_bias: true, shortcut: pool-conv, padding: same, act: gelu-tanh, norm_eps: 1e-3``.
    """

    block = "mbconv"
    takes = ("image",)
    family = "convolution"

    dim: PositiveInt | None = Field(None, description="Output channels; the input's when unset.")
    expansion: float = Field(4.0, gt=0, description="Hidden channels as a multiple of the output channels.")
    stride: Literal[1, 2] = Field(1, description="Stride of the depthwise convolution (2 halves the map).")
    se: float = Field(0.25, ge=0, lt=1, description="Squeeze-excitation width as a fraction of the hidden "
                                                    "channels; 0 for none.")
    act: Activation = Field("gelu", description="Activation after the expansion and depthwise convolutions.")
    bias: bool = Field(True, description="Biases in the convolutions.")
    drop_path: float = Field(0.0, ge=0, lt=1, description="Stochastic depth on the residual branch, training only.")
    expand_from: Literal["output", "input"] = Field(
        "output", description="What expansion multiplies: the output channels (MaxViT) or the input channels "
                              "(MobileNetV2, MobileViT's MV2 blocks).")
    norm: Literal["post", "pre"] = Field(
        "post", description="post: a batch norm after each convolution (MobileNetV2, vit-pytorch's MaxViT); pre: one "
                            "before the expansion, after the expansion and the depthwise convolution, none after the "
                            "projection (MaxViT's code: the pre-norm block).")
    norm_eps: float | None = norm_eps_field("the batch norms (MaxViT's TensorFlow code: 1e-3)")
    project_bias: bool | None = Field(None, description="Bias in the 1×1 projection and the shortcut's convolution; "
                                      "bias when unset (MaxViT: only these two have one).")
    se_from: Literal["hidden", "output"] = Field(
        "hidden", description="What se is a fraction of: the hidden channels (vit-pytorch) or the output channels "
                              "(MaxViT's code: a quarter of the output width).")
    se_bias: bool = Field(False, description="Biases in the squeeze-excitation's two layers (MaxViT's code).")
    shortcut: Literal["same-shape", "pool-conv"] = Field(
        "same-shape", description="same-shape: the residual only where the shape is unchanged (MobileNetV2, "
                                  "vit-pytorch); pool-conv: always one, through a 2×2 average pool where the block "
                                  "downsamples and a 1×1 convolution where it changes the width (MaxViT's code).")
    padding: Literal["symmetric", "same"] = Field(
        "symmetric", description="The depthwise convolution's padding: 1 on every side, or TensorFlow's SAME (a "
                                 "stride-2 convolution of an even map pads only the bottom and right: MaxViT's "
                                 "TensorFlow weights); the map's size is the same.")

    def dims(self, x: Shape) -> tuple[int, int, int, int]:
        cin = x.features
        cout = self.dim or cin
        hidden = int(self.expansion * (cout if self.expand_from == "output" else cin))
        return cin, cout, hidden, int((hidden if self.se_from == "hidden" else cout) * self.se)

    def shortcut_conv(self, x: Shape) -> bool:
        """Whether the shortcut holds a 1×1 convolution."""
        cin, cout, _, _ = self.dims(x)
        return self.shortcut == "pool-conv" and cin != cout

    def infer(self, x: Shape) -> Shape:
        c, h, w = x.dims
        _, cout, hidden, _ = self.dims(x)
        need(hidden > 0, "mbconv's hidden width is 0", "raise expansion")
        return Shape.image(cout, conv_out(h, 3, self.stride, 1), conv_out(w, 3, self.stride, 1))

    def count_params(self, x: Shape) -> int:
        cin, cout, hidden, squeeze = self.dims(x)
        project_bias = self.bias if self.project_bias is None else self.project_bias
        n = conv_params(cin, hidden, 1, bias=self.bias) + 2 * hidden
        n += conv_params(hidden, hidden, 3, groups=hidden, bias=self.bias) + 2 * hidden
        if squeeze:
            n += 2 * hidden * squeeze + (hidden + squeeze if self.se_bias else 0)
        n += conv_params(hidden, cout, 1, bias=project_bias) + 2 * (cin if self.norm == "pre" else cout)
        return n + (conv_params(cin, cout, 1, bias=project_bias) if self.shortcut_conv(x) else 0)

    def flops(self, x: Shape) -> int:
        cin, cout, hidden, squeeze = self.dims(x)
        _, h, w = x.dims
        out = self.infer(x)
        oh, ow = out.dims[1:]
        shortcut = oh * ow * cin * cout if self.shortcut_conv(x) else 0
        return 2 * (h * w * cin * hidden + oh * ow * hidden * 9 + 2 * hidden * squeeze + oh * ow * hidden * cout
                    + shortcut)

    def pattern(self, x: Shape) -> str:
        return "stride 2" if self.stride == 2 else ""

    def build(self, x: Shape):
        from .modules.conv import MBConv

        cin, cout, hidden, squeeze = self.dims(x)
        return MBConv(cin, cout, hidden, squeeze, self.stride, self.act, self.bias, self.drop_path, norm=self.norm,
                      eps=self.norm_eps, project_bias=self.bias if self.project_bias is None else self.project_bias,
                      se_bias=self.se_bias, shortcut=self.shortcut, padding=self.padding)
