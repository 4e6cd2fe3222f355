"""The vit-pytorch README examples as data: which class, with which arguments, a zoo blueprint reproduces.

``vitdsl verify BLUEPRINT --against vit-pytorch:CLASS`` builds the reference from here, and the parity
tests (tests/references/) build theirs from the same entries, so the command checks what the suite
checks. An entry names the blueprint, its variant and ``--set`` overrides, the reference class and its
constructor arguments (tuples where vit-pytorch tests ``isinstance(x, tuple)``). Only references that
are called as ``model(x)`` are here: those needing extra arguments (NaViT's image lists, ATS's sampled
ids, a distillation wrapper) stay with their tests.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import VitdslError


@dataclass(frozen=True)
class Readme:
    blueprint: str
    cls: str  # "vit_pytorch.vit.ViT"
    kwargs: dict[str, Any]
    variant: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    compat: str | None = None  # the overlay, where it is not the variant's own (vit-pytorch at paper sizes)
    note: str = ""

    def make(self, **changes: Any):
        """The reference module, built with these arguments (and ``changes`` to them)."""
        module, _, name = self.cls.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError as e:
            missing = e.name if getattr(e, "name", None) not in (None, "vit_pytorch") else "vit-pytorch"
            raise VitdslError(f"cannot import the reference class {self.cls}: {e}",
                              hint=f"install {missing} (pip install {missing})") from None
        return cls(**{**self.kwargs, **changes})


_FAQ = dict(dim=64, depth=2, heads=4, dim_head=16, mlp=128)
_FAQ_REF = dict(dim=64, depth=2, heads=4, dim_head=16, mlp_dim=128)

ENTRIES: list[Readme] = [
    Readme("vit", "vit_pytorch.vit.ViT", dict(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6,
                                                heads=16, mlp_dim=2048, dropout=0.1, emb_dropout=0.1)),
    Readme("simple_vit", "vit_pytorch.simple_vit.SimpleViT",
           dict(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6, heads=16, mlp_dim=2048)),
    # the FAQ: non-square images and patches (and small, so a check takes a moment)
    Readme("vit", "vit_pytorch.vit.ViT",
           dict(image_size=(96, 64), patch_size=(16, 32), num_classes=10, **_FAQ_REF),
           overrides=dict(image_height=96, image_width=64, patch_height=16, patch_width=32, classes=10, **_FAQ,
                          dropout=0.0, emb_dropout=0.0)),
    Readme("simple_vit", "vit_pytorch.simple_vit.SimpleViT",
           dict(image_size=(64, 128), patch_size=(16, 32), num_classes=10, **_FAQ_REF),
           overrides=dict(image_height=64, image_width=128, patch_height=16, patch_width=32, classes=10, **_FAQ)),
    Readme("deepvit", "vit_pytorch.deepvit.DeepViT",
           dict(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=6, heads=16, mlp_dim=2048,
                dropout=0.1, emb_dropout=0.1)),
    # CaiT and XCiT drop whole layers even in eval mode (a vit-pytorch bug): layer_dropout 0 for eval parity
    Readme("cait", "vit_pytorch.cait.CaiT",
           dict(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=12, cls_depth=2, heads=16,
                mlp_dim=2048, dropout=0.1, emb_dropout=0.1, layer_dropout=0.0), note="layer_dropout=0"),
    Readme("xcit", "vit_pytorch.xcit.XCiT",
           dict(image_size=256, patch_size=32, num_classes=1000, dim=1024, depth=12, cls_depth=2, heads=16,
                mlp_dim=2048, dropout=0.1, emb_dropout=0.1, layer_dropout=0.0, local_patch_kernel_size=3),
           note="layer_dropout=0"),
    Readme("t2t_vit", "vit_pytorch.t2t.T2TViT",
           dict(dim=512, image_size=224, depth=5, heads=8, mlp_dim=512, num_classes=1000,
                t2t_layers=((7, 4), (3, 2), (3, 2)))),
    Readme("pit", "vit_pytorch.pit.PiT",
           dict(image_size=224, patch_size=14, dim=256, num_classes=1000, depth=(3, 3, 3), heads=16, mlp_dim=2048,
                dropout=0.1, emb_dropout=0.1)),
    Readme("maxvit", "vit_pytorch.max_vit.MaxViT",
           dict(num_classes=1000, dim_conv_stem=64, dim=96, dim_head=32, depth=(2, 2, 5, 2), window_size=7,
                mbconv_expansion_rate=4, mbconv_shrinkage_rate=0.25, dropout=0.1)),
    Readme("cross_vit", "vit_pytorch.cross_vit.CrossViT",
           dict(image_size=256, num_classes=1000, depth=4, sm_dim=192, sm_patch_size=16, sm_enc_depth=2,
                sm_enc_heads=8, sm_enc_mlp_dim=2048, lg_dim=384, lg_patch_size=64, lg_enc_depth=3, lg_enc_heads=8,
                lg_enc_mlp_dim=2048, cross_attn_depth=2, cross_attn_heads=8, dropout=0.1, emb_dropout=0.1)),
    Readme("parallel_vit", "vit_pytorch.parallel_vit.ViT",
           dict(image_size=256, patch_size=16, num_classes=1000, dim=1024, depth=6, heads=8, mlp_dim=2048,
                num_parallel_branches=2, dropout=0.1, emb_dropout=0.1)),
    # non-square images and patches, three branches
    Readme("parallel_vit", "vit_pytorch.parallel_vit.ViT",
           dict(image_size=(64, 96), patch_size=(16, 8), num_classes=10, num_parallel_branches=3, **_FAQ_REF),
           overrides=dict(image_height=64, image_width=96, patch_height=16, patch_width=8, classes=10, **_FAQ,
                          branches=3)),
]


def _short(cls: str) -> str:
    return cls.rpartition(".")[2]


def find(blueprint: str, cls: str, variant: str | None, overrides: dict[str, Any]) -> Readme:
    """The entry for this blueprint, variant and overrides whose class is ``cls`` (its full or last name)."""
    ours = [e for e in ENTRIES if e.blueprint == blueprint]
    if not ours:
        known = ", ".join(sorted({e.blueprint for e in ENTRIES}))
        raise VitdslError(f"no vit-pytorch README arguments are known for blueprint '{blueprint}'",
                          hint=f"known: {known}")
    named = [e for e in ours if cls in (e.cls, _short(e.cls))]
    if not named:
        classes = ", ".join(sorted({e.cls for e in ours}))
        raise VitdslError(f"'{blueprint}' is not compared with vit-pytorch class '{cls}'", hint=f"use {classes}")
    for e in named:
        if e.variant == variant and e.overrides == dict(overrides):
            return e
    shown = "; ".join(describe(e) for e in named)
    raise VitdslError(f"no README arguments of {named[0].cls} match '{blueprint}'"
                      + (f" variant '{variant}'" if variant else "")
                      + (f" with {_fmt(overrides)}" if overrides else ""),
                      hint=f"the known ones: {shown}")


def _fmt(overrides: dict[str, Any]) -> str:
    return " ".join(f"--set {k}={v}" for k, v in overrides.items())


def describe(e: Readme) -> str:
    args = " ".join(x for x in (f"-v {e.variant}" if e.variant else "", _fmt(e.overrides)) if x)
    return f"{e.blueprint}{' ' + args if args else ''}"
