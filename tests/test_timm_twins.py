"""Twins: the named variants of ``twins_svt`` and ``twins_pcpvt`` are timm's models exactly (``vitdsl.interop.timm``'s
twins family): the same parameters, and the same outputs once timm's weights, all re-drawn at random, are imported.
The twins_svt zoo default stays vit-pytorch's README example (tests/test_parity.py)."""
import copy

import pytest
import torch
from timm_oracle import TOLERANCE, difference, imported

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.interop.timm import twins

timm = pytest.importorskip("timm")


def test_the_smallest_pcpvt_is_timms_exactly():
    assert difference("twins_pcpvt_small") < TOLERANCE


def test_the_family_covers_every_name_timm_registers():
    assert sorted(twins.MODELS) == sorted(timm.list_models("twins_*"))
    assert vt.variants()["twins_svt"] == {size: [f"twins_svt_{size}"] for size in ("base", "large", "small")}


def _no_kv_norm(model):
    """vit-pytorch's global attention: no LayerNorm after the sub-sampling convolution."""
    for path in model.paths:
        if path.endswith("global_attn") and hasattr(model.block(path), "sr_norm"):
            model.block(path).sr_norm = torch.nn.Identity()


def _patches_read_hwc(model):
    """The patch vectors read in (p1 p2 c) order instead of the convolution's (c p1 p2)."""
    proj = model.block("stages.0.patchify").proj
    d, c, p = proj.weight.shape[0], 3, 4
    proj.weight.copy_(proj.weight.view(d, c, p, p).permute(0, 2, 3, 1).reshape(d, -1).clone())


def test_the_smallest_svt_is_timms_exactly_and_a_wrong_wiring_shows():
    ref, model, x = imported("twins_svt_small")
    with torch.no_grad():
        want = ref(x)
        assert want.abs().max() > 1 and (model(x) - want).abs().max() < TOLERANCE
        for wrong in (_no_kv_norm, _patches_read_hwc):
            other = copy.deepcopy(model)
            wrong(other)
            assert (other(x) - want).abs().max() > 10 * TOLERANCE, wrong.__name__


def test_the_paper_variants_place_the_peg_after_the_first_local_block_and_close_with_a_norm():
    graph = vitdsl.validate("twins_svt", "small")
    paths = [node.path for node, _, _ in graph]
    first = [p.removeprefix("stages.3.blocks.0.") for p in paths if p.startswith("stages.3.blocks.0.")]
    assert first == ["local_attn", "local_ff", "local_peg", "global_attn", "global_ff"]
    assert paths[-3:] == ["norm", "pool", "head"]
    default = [node.path for node, _, _ in vitdsl.validate("twins_svt")]
    assert [p.removeprefix("stages.3.blocks.0.") for p in default if p.startswith("stages.3.blocks.0.")] == \
        ["global_attn", "global_ff", "peg"]  # vit-pytorch: no local attention in the last stage, its PEG after
    assert "norm" not in default
