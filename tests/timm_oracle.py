"""timm as a test oracle: its models with every tensor re-drawn at random, and the check that a zoo blueprint
is one of them exactly (``vitdsl.interop.timm``'s contract: the same parameters; after ``import_weights``,
the same outputs within 1e-5 in float32, eval mode, at timm's default input size)."""
from __future__ import annotations

import fnmatch

import pytest
import torch

import vitdsl.interop.timm as vt

timm = pytest.importorskip("timm")

TOLERANCE = 1e-5
# The families whose weights drawn at 0.2 blow the logits up: LeViT's BatchNorm after every projection keeps no
# scale in eval mode, so the gains compound (levit_512's logits reach 2e6, where float32 rounding alone is ~10,
# a relative 4e-6); at 0.15 every levit_* gives logits between 1 and 6.
# MaxViT-XL (475-507M parameters, widths to 1536) at 0.2 gives logits of 20-30 that differ by 1.5e-5 to 4e-5 from
# float32 rounding alone (a relative 1e-6; the same comparison in float64 differs by 5e-14); at 0.1, by 4e-6.
# SigLIP's MAP head ends in a residual MLP on the pooled vector, no norm after it: at 0.2 vit_base_patch16_siglip_224
# gives features up to 56 that differ by 2.2e-5 from float32 rounding alone (in float64: 0); at 0.1, up to 5, by 2e-6.
# EVA-02-S at 224 has no head: its output is the pooled features after a LayerNorm, whose γ and β drawn at 0.2
# keep them under 0.83 (equal to timm's within 2.4e-7); at 0.3 they reach 1.8 (and agree within 3.6e-7).
# DaViT-H at 0.2 gives logits up to 8.4 that differ by 1.2e-5 from float32 rounding alone (in float64: 8e-14); at 0.1,
# up to 2.3, by 7e-7. Its Florence-2 tower (768×768, headless) at 0.2 gives features up to 1.6 that differ by 4.8e-5
# (in float64: 2e-12); at 0.15, up to 1.1, by 2.4e-6 (0.1 keeps them under 0.7). DaViT-G (1.4B) at 0.2 differs by 8e-5
# (float64 needs more memory than the sweep has here); at 0.1, logits up to 3.1 by 1.1e-6. The first matching prefix
# counts.
STDS: dict[str, float] = {"levit_": 0.15, "maxvit_xlarge_": 0.1, "vit_*_siglip_": 0.1, "eva02_small_patch14_224": 0.3,
                          "davit_huge_fl": 0.15, "davit_huge": 0.1, "davit_giant": 0.1}


def std_for(name: str) -> float:
    """The std ``difference`` redraws ``name``'s weights with: 0.2, or its family's in STDS (a name prefix, ``*``
    standing for any characters)."""
    return next((std for prefix, std in STDS.items() if fnmatch.fnmatchcase(name, prefix + "*")), 0.2)


def redrawn(name: str, std: float = 0.2, **kwargs) -> torch.nn.Module:
    """timm's model in eval mode, every parameter and persistent float buffer drawn at random (BatchNorm's
    running variances in [0.5, 1.5)), so no zero-initialised head or layer scale hides a wrong wiring. A
    larger ``std`` makes attention logits sharper (CaiT's transposed talking-heads mix shows at 0.5, moves
    the logits by 3e-5 only at 0.2) but the logits larger, and the tolerance is absolute: deep models stay
    at 0.2 (ViT-Ti's logits differ by 3e-5 at 0.5, from float32 rounding alone). ``kwargs`` go to
    ``timm.create_model`` (a reduced model: ``depth=3``)."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if key.endswith("running_var") else torch.randn_like(t) * std)
    return model


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sample(ref: torch.nn.Module, batch: int = 1) -> torch.Tensor:
    """An input at timm's default size for ``ref``."""
    return torch.randn(batch, *ref.pretrained_cfg["input_size"], generator=torch.Generator().manual_seed(1))


def outputs(name: str, **kwargs) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """(the zoo's model with timm's re-drawn weights, an input, timm's output on it): one build for a family's
    exactness check and its wrong-wiring checks (a module fixture)."""
    ref, model, x = imported(name, **kwargs)
    with torch.no_grad():
        return model, x, ref(x)


def assert_exact(model: torch.nn.Module, x: torch.Tensor, want: torch.Tensor) -> None:
    """``model`` gives timm's output ``want`` on ``x``, and ``want`` is large enough that a wrong wiring shows."""
    assert want.abs().max() > 1
    with torch.no_grad():
        assert (model(x) - want).abs().max() < TOLERANCE


def imported(name: str, std: float = 0.2, batch: int = 1,
             **kwargs) -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    """(timm's ``name`` redrawn, the zoo's ``vt.build(name)`` with those weights imported strictly, an input);
    ``kwargs``, a reduced model's, are both timm's arguments and the blueprint's parameters (``depth=3``)."""
    ref = redrawn(name, std, **kwargs)
    model = vt.build(name, seed=0, **kwargs).eval()
    assert count(model) == count(ref)
    mapping = vt.import_weights(model, ref)
    # every timm tensor found its place (a split one as its slices, 'key[i]')
    assert {k.split("[")[0] for k in mapping} >= set(ref.state_dict())
    return ref, model, sample(ref, batch)


def difference(name: str, std: float | None = None, batch: int = 1) -> float:
    """Max abs difference of the logits (every output tensor, for models that give several) of timm's ``name``
    and ours, after the import (weights drawn at ``std``, ``std_for(name)`` when unset); asserts the random
    weights reach the outputs."""
    ref, model, x = imported(name, std_for(name) if std is None else std, batch)
    with torch.no_grad():
        want, got = ref(x), model(x)
    want, got = (want, got) if isinstance(want, torch.Tensor) else (torch.cat(list(want), -1), torch.cat(list(got), -1))
    assert want.abs().max() > 1  # random weights: the output is not near zero everywhere
    return (got - want).abs().max().item()
