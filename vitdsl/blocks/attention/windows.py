"""The windows of a feature map that local-attn and separable-attn attend within."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from ..base import need_fit
from ..shape import Shape
from .core import AttentionSpec


class Windows(AttentionSpec):
    partition: Literal["block", "grid"] = Field("block", description="block: contiguous windows; "
                                                "grid: dilated windows that span the whole map.")
    window: PositiveInt | None = Field(7, description="Window side w: attention runs over w×w tokens; "
                                       "none: one window, the whole map (ScalableViT's window None).")
    windows: PositiveInt | None = Field(None, description="Instead of window: the number of windows along each "
                                        "side, so a window covers (height/n)×(width/n) tokens whatever the map "
                                        "size (NesT's nested blocks; with partition: grid, tokens n apart).")
    dim_head: PositiveInt | None = Field(32, description="Width of one head. When unset: width / heads.")

    @model_validator(mode="after")
    def _windows_given(self):
        if self.heads is None and self.dim_head is None:
            raise ValueError("set heads or dim_head")
        if self.windows is not None and "window" in self.model_fields_set:
            raise ValueError("set window (the window side) or windows (how many per side), not both")
        return self

    def map_window_size(self, x: Shape) -> tuple[int, int]:
        """(window height, window width) on a feature map, checking that the windows tile it."""
        _, h, w = x.dims
        if self.windows is None:
            win = self.window
            if win is None:
                return h, w
            need_fit(h, w, win, f"window {win} does not divide", "windows")
            return win, win
        need_fit(h, w, self.windows, f"{self.windows} windows per side do not tile", "window counts")
        return h // self.windows, w // self.windows
