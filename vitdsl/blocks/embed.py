"""Blocks that turn pixels into tokens and give tokens their positions: patchify, pos-embed."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from .base import (
    BlockSpec,
    divisors_hint,
    fmt_pair,
    linear_params,
    need,
    need_fit,
    norm_eps_field,
    norm_params,
    pair,
    register,
    window_hint,
)
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

    On ``images`` (NaViT's "Patch n' Pack": samples that are lists of images of any size up to the
    declared maximum, sides divisible by the patch; a flat list is one sample, or is grouped by
    ``max_seq_len``; a plain (B, C, H, W) batch is one image per sample) it packs each sample's
    patches into one sequence padded to the longest sample: ``packed`` tokens that carry each
    token's image, row and column.

    On a volume (C, T, H, W) the patches are tubelets of ``frame_patch`` frames (3-D ViT, ViViT): one
    sequence ordered frame by frame (``b (f h w) d``, a 3-D grid), or, with ``frames: groups``, one
    sequence per frame position, each a group of its own (ViViT's per-frame spatial encoder)."""

    block = "patchify"
    capabilities = frozenset({"patchify"})
    takes = ("image", "tokens", "images", "volume")
    family = "embedding"
    regroups = True

    patch: PositiveInt | tuple[PositiveInt, PositiveInt] = Field(
        description="Patch size, one number or [height, width].")
    dim: PositiveInt | None = Field(None, description="Token width after the projection; when unset, no "
                                                      "projection: the patch vectors (C·patch²) are the tokens.")
    order: Literal["hwc", "chw", "whc"] = Field(
        "hwc", description="Order of a patch's values before the projection: hwc = (p1 p2 c) as in "
                           "ViT/timm-style rearranges, chw = (c p1 p2) as nn.Unfold gives, whc = (p2 p1 c): column by "
                           "column, as Swin's patch merging joins its 2×2 neighbours (non-overlapping patches only).")
    pre_norm: PatchNorm = Field("none", description="Norm of the raw patch vector before the projection.")
    post_norm: PatchNorm = Field("none", description="Norm of the token after the projection.")
    norm_eps: float | None = norm_eps_field("pre_norm and post_norm")
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
    token_dropout: float = Field(0.0, ge=0, lt=1, description="On images (packed): while training, keep a "
                                 "random max(1, int(n·(1-p))) of each image's n patches.")
    max_seq_len: PositiveInt | None = Field(
        None, description="On images (packed): pack a flat list of images greedily, in order, into samples of "
                          "at most this many tokens (vit-pytorch's group_images); unset: a flat list is one sample.")
    layout: Literal["tokens", "map"] = Field(
        "tokens", description="tokens: a sequence of tokens; map: a feature map (D, rows, columns) of the same "
                              "values, for blocks on maps (NesT, Twins: their channel LayerNorms and 1×1 "
                              "convolution on a map are these norms and this projection).")
    frame_patch: PositiveInt = Field(1, description="Volumes: frames per patch, so a patch is a tubelet of "
                                     "frame_patch × patch height × patch width, its values ordered (pf p1 p2 c) "
                                     "for hwc and (c pf p1 p2) for chw.")
    frames: Literal["tokens", "groups"] = Field(
        "tokens", description="Volumes: tokens = all tubelets form one sequence, frame by frame (b (f h w) d; "
                              "the grid is frames × rows × columns); groups = each frame position keeps its own "
                              "sequence of rows × columns tokens, one group per frame position, folded into the "
                              "batch (ViViT's spatial encoder).")

    @model_validator(mode="after")
    def _projection(self):
        if self.dim is None and self.post_norm != "none":
            raise ValueError("post_norm needs a projection: set dim, or drop post_norm")
        if self.order == "whc" and (self.unfolds() or self.shift or "frame_patch" in self.model_fields_set):
            raise ValueError("order: whc takes non-overlapping patches: drop stride, padding, shift and frame_patch")
        return self

    def unfolds(self) -> bool:
        return self.stride is not None or pair(self.padding) != (0, 0)

    def source(self, x: Shape) -> tuple[str, int, int]:
        """(what the map is called, height, width) of the map the patches are cut from."""
        need(self.order != "whc" or x.kind in ("image", "tokens"), f"order: whc cuts images and maps, not {x.kind}")
        if x.kind == "images":
            need(self.dim is not None and not self.unfolds() and not self.shift and self.layout == "tokens",
                 "patchify packs images of varying sizes with non-overlapping patches and a projection: it takes "
                 "dim, and no stride, padding, shift or layout: map",
                 "set dim; remove stride, padding, shift and layout")
            return "maximum image", *x.dims[1:]
        need(self.token_dropout == 0 and self.max_seq_len is None, f"token_dropout and max_seq_len are for packing "
             f"images of varying sizes, but the input here is {x.kind}", "declare the input as images: [C, H, W]")
        if x.kind == "image":
            return "image", *x.dims[1:]
        if x.kind == "volume":
            need(self.layout == "tokens", "layout: map cuts images into a map; a volume is cut into tubelet tokens",
                 "drop layout, or run a conv-stem with frames: groups for per-frame maps")
            return "frame", *x.dims[2:]
        n = x.dims[0]
        need(x.grid is not None and len(x.grid) == 2,
             "patchify on tokens needs tokens that carry a 2-D patch grid, to fold them back into a map, "
             "but these carry none", "patchify the image itself, or tokens that come from patchify")
        need(x.prefix == 0, f"patchify on tokens folds the patch grid back into a map, but {x.prefix} special "
             "token(s) lead the sequence", "put the tokens block after the last patchify")
        need(x.suffix == 0, f"patchify on tokens folds the patch grid back into a map, but {x.suffix} special "
             "token(s) trail the sequence", "put the tokens block after the last patchify")
        gh, gw = x.grid
        need(n == gh * gw, f"patchify on tokens: {n} tokens do not fill the {gh}×{gw} patch grid")
        return "token grid", gh, gw

    def grid(self, x: Shape) -> tuple[int, int]:
        what, h, w = self.source(x)
        ph, pw = pair(self.patch)
        need(self.shift < min(h, w), f"shift {self.shift} must be smaller than the {what} ({h}×{w})",
             "shift by a few pixels; vit-pytorch's SPT uses 1")
        if not self.unfolds():
            fits = window_hint(h, w, "square patches") + "; " if what != "maximum image" else ""
            need(h % ph == 0, f"{what} height {h} is not divisible by the patch height {ph}",
                 fits + divisors_hint(h, ph, "heights"))
            need(w % pw == 0, f"{what} width {w} is not divisible by the patch width {pw}",
                 fits + divisors_hint(w, pw, "widths"))
            return h // ph, w // pw
        stride, pad = pair(self.stride or self.patch), pair(self.padding)
        out = []
        for side, size, k, s, p in (("height", h, ph, stride[0], pad[0]), ("width", w, pw, stride[1], pad[1])):
            need(size + 2 * p >= k, f"patch {side} {k} does not fit the {what} {side} {size} padded by {p} "
                 f"on each side ({size} + 2·{p} = {size + 2 * p} < {k})",
                 f"use a patch {side} of at most {size + 2 * p}, or more padding")
            out.append((size + 2 * p - k) // s + 1)
        return out[0], out[1]

    def frame_grid(self, x: Shape) -> int:
        """Frame positions of a volume (frames // frame_patch); 1 for images and tokens."""
        if x.kind != "volume":
            need(self.frame_patch == 1 and self.frames == "tokens", f"frame_patch and frames cut volumes, but "
                 f"the input is {x.kind}", "drop them, or feed a volume")
            return 1
        need(not self.unfolds() and not self.shift, "stride, padding and shift cut images, not volumes",
             "drop them: volumes are cut into non-overlapping tubelets")
        t = x.dims[1]
        fits = [d for d in range(1, t + 1) if t % d == 0]
        need(t % self.frame_patch == 0, f"{t} frames are not divisible by the frame patch {self.frame_patch}",
             f"frame patches that fit {t} frames: {', '.join(map(str, fits))}")
        return t // self.frame_patch

    def patch_dim(self, x: Shape) -> int:
        ph, pw = pair(self.patch)
        return x.features * (5 if self.shift else 1) * ph * pw * self.frame_patch

    def width(self, x: Shape) -> int:
        return self.dim if self.dim is not None else self.patch_dim(x)

    def infer(self, x: Shape) -> Shape:
        f = self.frame_grid(x)
        gh, gw = self.grid(x)
        if x.kind == "images":
            return Shape("packed", (gh * gw, self.dim), (gh, gw))
        if self.layout == "map":
            return Shape.image(self.width(x), gh, gw).with_groups(x.groups)
        if x.kind == "volume" and self.frames == "tokens":
            return Shape.tokens(f * gh * gw, self.width(x), grid=(f, gh, gw), groups=x.groups)
        return Shape.tokens(gh * gw, self.width(x), grid=(gh, gw), groups=x.groups * f)

    def count_params(self, x: Shape) -> int:
        p, d = self.patch_dim(x), self.width(x)
        proj = linear_params(p, d, self.bias) if self.dim is not None else 0
        return norm_params(self.pre_norm, p) + proj + norm_params(self.post_norm, d)

    def flops(self, x: Shape) -> int:
        if self.dim is None:
            return 0
        gh, gw = self.grid(x)
        return 2 * self.frame_grid(x) * gh * gw * self.patch_dim(x) * self.dim

    def pattern(self, x: Shape) -> str:
        if x.kind == "volume":
            return f"tubelet {self.frame_patch}×{fmt_pair(pair(self.patch))}" + \
                (", frames → groups" if self.frames == "groups" else "")
        text = f"patch {fmt_pair(pair(self.patch))}"
        if self.unfolds():
            text += f", stride {fmt_pair(pair(self.stride or self.patch))}"
        if pair(self.padding) != (0, 0):
            text += f", padding {fmt_pair(pair(self.padding))}"
        return text + (", packed" if x.kind == "images" else "")

    def build(self, x: Shape):
        from .modules.embed import Patchify

        if x.kind == "images":
            from .modules.packed import PackedPatchify

            return PackedPatchify(x.features, pair(self.patch), self.dim, self.order, self.pre_norm, self.post_norm,
                                  self.bias, (x.dims[1], x.dims[2]), self.token_dropout, self.max_seq_len,
                                  eps=self.norm_eps)

        return Patchify(x.features, pair(self.patch), self.dim, self.order, self.pre_norm, self.post_norm, self.bias,
                        stride=pair(self.stride or self.patch) if self.unfolds() else None,
                        padding=pair(self.padding), grid=x.grid if x.kind == "tokens" else None, shift=self.shift,
                        to_map=self.grid(x) if self.layout == "map" else None,
                        frame_patch=self.frame_patch if x.kind == "volume" else None, eps=self.norm_eps,
                        fold_frames=self.frames == "groups")


@register
class PosEmbed(BlockSpec):
    """Add position information to tokens (or a feature map): a learned table, fixed sine-cosine
    features, or a learned scalar per position.

    ``learned`` on a feature map is a (C, H, W) table added to the map (PiT adds its positions to the
    map of patches, before the class token joins); ``per_window`` keeps the same table window by window
    (NesT's code keeps its blocks' positions so).

    ``learned`` covers every token that reaches it (put it after ``tokens`` to give the cls token a
    position too, as ViT does); on tokens that hold groups (frames) the groups share the table, or
    each has its own with ``per_group`` (ViViT). ``sincos2d`` needs the patch grid and no leading
    special tokens; it is computed, not learned, and is not part of the state_dict; ``sincos3d`` is
    the same for the frames × rows × columns grid of a volume's tubelets (3-D SimpleViT).
    ``sincos1d`` is the 1-D sinusoid of the sequence position (CCT's 'sine'), covering every token;
    it is kept in the state_dict, as a frozen parameter or a buffer (``store``). ``none`` adds
    nothing (only the dropout runs), so a parameter can switch positions off. ``scalar`` adds one
    learned number per position to all its features; on a feature map the table covers one of
    ``windows``×``windows`` windows and every window shares it (NesT, whose attention runs within
    those windows)."""

    block = "pos-embed"
    capabilities = frozenset({"positions"})
    takes = ("tokens", "packed", "image")
    shorthand = "kind"
    family = "embedding"

    kind: Literal["learned", "sincos2d", "sincos1d", "factorized", "none", "scalar", "sincos3d", "fourier"] = Field(
        "learned", description="learned: a trained (N, D) table covering every token; "
                               "sincos2d: fixed sine-cosine features of the patch row and column; "
                               "sincos3d: the same of the column, row and frame of a volume's tubelets, "
                               "zero-padded to the width (3-D SimpleViT); "
                               "sincos1d: fixed sin/cos of the token index (even features sin, odd cos); "
                               "factorized: learned row (rows, D) and column (columns, D) tables, each patch "
                               "getting row[r] + column[c] — on packed tokens per image (NaViT); "
                               "none: no positions; scalar: a learned number per token, or per position of a "
                               "feature map's window, added to every feature (NesT); fourier: XCiT's Fourier "
                               "features of the row and column (each scaled to (0, 2π]), fourier_dim per axis, "
                               "projected to the width by a learned Linear map.")
    temperature: float = Field(10000.0, gt=0, description="sincos2d, sincos1d, fourier: base of the frequencies.")
    fourier_dim: PositiveInt = Field(32, description="fourier: features per axis (even): sin and cos of "
                                     "fourier_dim / 2 frequencies, interleaved.")
    init_std: float = Field(0.02, gt=0, description="learned, scalar: standard deviation of the normal initialisation.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the tokens after the addition.")
    unused_rows: NonNegativeInt = Field(0, description="learned: extra table rows after the used ones, never "
                                        "added (vit-pytorch's PatchMerger ViT allocates n+1 rows for n patches).")
    init: Literal["normal", "trunc_normal"] = Field(
        "normal", description="learned, scalar: initial distribution, normal or truncated normal (at ±2, as "
                              "torch's trunc_normal_), with standard deviation init_std.")
    store: Literal["parameter", "buffer"] = Field(
        "parameter", description="sincos1d: keep the table as a frozen parameter (counted among the "
                                 "parameters, as CCT) or as a buffer (CCT-3D).")
    windows: PositiveInt = Field(1, description="scalar on a feature map: windows per side; the table covers "
                                 "one window's positions and is shared by all windows. learned: see per_window.")
    per_group: bool = Field(False, description="learned, on tokens that hold groups (frames): one table per "
                            "group, (G, N, D), as ViViT's (1, frames, N, D); otherwise the groups share one.")
    per_window: bool = Field(False, description="learned, on a feature map: the (C, H, W) table stored window by "
                             "window, (windows², rows × columns of a window, C), both in row-major order, as "
                             "NesT's (1, blocks, block positions, C); every window has its own positions.")

    @model_validator(mode="after")
    def _rows_need_a_table(self):
        if self.unused_rows and self.kind != "learned":
            raise ValueError(f"unused_rows needs kind: learned (a {self.kind} position has no table)")
        if self.windows != 1 and not (self.kind == "scalar" or self.per_window):
            kind = "learned without per_window" if self.kind == "learned" else self.kind
            raise ValueError(f"windows is for kind: scalar, or learned with per_window, not {kind}")
        if self.per_window and (self.kind != "learned" or self.per_group or self.unused_rows):
            raise ValueError("per_window needs kind: learned, without per_group and unused_rows")
        if self.per_group and (self.kind != "learned" or self.unused_rows):
            raise ValueError("per_group needs kind: learned, without unused_rows")
        return self

    def takes_padding(self) -> str | None:
        return "keep" if self.kind in ("learned", "scalar", "sincos1d", "none") else None  # added row by row

    def window(self, x: Shape) -> tuple[int, int]:
        """The size of one window of a feature map, checking that the windows tile it."""
        _, h, w = x.dims
        need_fit(h, w, self.windows, f"{self.windows} windows per side do not tile", "window counts")
        return h // self.windows, w // self.windows

    def infer(self, x: Shape) -> Shape:
        if x.kind == "image":
            need(self.kind in ("scalar", "none", "learned"), f"a {self.kind} position table is for tokens, but a "
                 "feature map reaches it", "use kind: learned or scalar on a feature map, or patchify it first")
            need(not (self.kind == "learned" and (self.unused_rows or self.per_group)), "unused_rows and per_group "
                 "are for tables of tokens, but a feature map reaches pos-embed", "remove them")
            self.window(x)
            return x
        need(self.windows == 1 and not self.per_window, "windows and per_window are for feature maps, but tokens "
             "reach pos-embed", "remove them")
        if x.kind == "packed":
            need(self.kind == "factorized", f"packed tokens hold several images, so a {self.kind} position "
                 "table would mix them up", "use kind: factorized, which indexes each image's own grid")
        if self.kind in ("factorized", "sincos2d", "fourier"):
            need(x.grid is not None and len(x.grid) == 2, f"{self.kind} positions need tokens that come from a 2-D "
                 "patch grid", "place pos-embed right after patchify")
            for count, where in ((x.prefix, "lead"), (x.suffix, "trail")):
                need(count == 0, f"{self.kind} positions cover patch tokens only, but {count} special token(s) "
                     f"{where} the sequence", "add the tokens block after pos-embed")
        if self.kind == "sincos2d":
            need(x.features % 4 == 0, f"sincos2d needs a token width divisible by 4, got {x.features}")
        if self.kind == "fourier":
            need(self.fourier_dim % 2 == 0, f"fourier_dim must be even (sin and cos pairs), got {self.fourier_dim}")
        if self.kind == "sincos3d":
            need(x.grid is not None and len(x.grid) == 3, "sincos3d positions need tokens that come from a "
                 "volume's tubelets (a frames × rows × columns grid)",
                 "place pos-embed right after patchify on a volume, with frames: tokens")
            need(x.prefix == 0 and x.suffix == 0, f"sincos3d positions cover patch tokens only, but "
                 f"{x.prefix + x.suffix} special token(s) are in the sequence", "add the tokens block after pos-embed")
            need(x.features >= 12, f"sincos3d needs a token width of at least 12 (two frequencies per sine "
                 f"and cosine of each axis), got {x.features}")
        if self.per_group:
            need(x.groups > 1, "per_group gives each group its own table, but these tokens hold no groups",
                 "drop per_group, or make groups first (patchify on a volume with frames: groups)")
        return x

    def count_params(self, x: Shape) -> int:
        if self.kind == "fourier":
            return linear_params(2 * self.fourier_dim, x.features)
        if self.kind == "factorized":
            return (x.grid[0] + x.grid[1]) * x.features
        if self.kind == "scalar":
            return self.window(x)[0] * self.window(x)[1] if x.kind == "image" else x.dims[0]
        frozen = self.kind == "sincos1d" and self.store == "parameter"
        table = self.kind == "learned" or frozen
        return (x.numel + self.unused_rows * x.features) * (x.groups if self.per_group else 1) if table else 0

    def flops(self, x: Shape) -> int:
        return 2 * x.dims[0] * 2 * self.fourier_dim * x.features if self.kind == "fourier" else 0

    def pattern(self, x: Shape) -> str:
        if self.kind == "scalar" and x.kind == "image" and self.windows > 1:
            return f"scalar, one {fmt_pair(self.window(x))} table for {self.windows}×{self.windows} windows"
        if self.per_window:
            return f"learned, stored as {self.windows}×{self.windows} windows of {fmt_pair(self.window(x))}"
        if self.per_group:
            return f"{self.kind}, one table per group"
        return f"rows {x.grid[0]} + cols {x.grid[1]}" if self.kind == "factorized" else self.kind

    def build(self, x: Shape):
        if self.kind == "scalar":
            from .modules.embed import ScalarPositions

            window = self.window(x) if x.kind == "image" else None
            return ScalarPositions(x.dims[0] if window is None else window[0] * window[1], window, self.windows,
                                   init_std=self.init_std, dropout=self.dropout, init=self.init)
        if self.kind == "fourier":
            from .modules.embed import FourierPositions

            return FourierPositions(tuple(x.grid), x.features, self.fourier_dim, self.temperature, self.dropout)
        if self.kind == "factorized":
            from .modules.packed import FactorizedPositions

            return FactorizedPositions(tuple(x.grid), x.features, self.init_std, self.dropout)
        from .modules.embed import LearnedPositions, NoPositions, SinCos1dPositions, SinCos2dPositions, sincos_3d

        if self.kind == "learned" and x.kind == "image":
            return LearnedPositions(*x.dims[1:], init_std=self.init_std, dropout=self.dropout, init=self.init,
                                    groups=x.features, on_map=True,
                                    windows=self.windows if self.per_window else None)
        if self.kind == "learned":
            return LearnedPositions(*x.dims, init_std=self.init_std, dropout=self.dropout, init=self.init,
                                    unused_rows=self.unused_rows, groups=x.groups if self.per_group else 1)
        if self.kind == "sincos3d":
            return SinCos2dPositions(x.grid, x.features, self.temperature, dropout=self.dropout, table=sincos_3d)
        if self.kind == "sincos1d":
            return SinCos1dPositions(*x.dims, self.temperature, self.store, dropout=self.dropout)
        if self.kind == "none":
            return NoPositions(self.dropout)
        return SinCos2dPositions(x.grid, x.features, self.temperature, dropout=self.dropout)
