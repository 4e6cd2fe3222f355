"""BEiT: the blueprint's named variants are timm's ``beit_*`` and ``beitv2_*`` models exactly: the same
parameters at every image size, and base's outputs once timm's weights, all re-drawn at random, are imported.
The rest of the family runs in the sweep (``make timm-sweep``)."""
import pytest
import torch
from timm_oracle import TOLERANCE, assert_exact, outputs

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.blocks.modules.attention import RelPosTokenAttention
from vitdsl.blocks.modules.attention.tokens import cls_relative_index
from vitdsl.errors import VitdslError
from vitdsl.interop.timm import beit

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def base():
    return outputs("beit_base_patch16_224")


def test_base_is_timms_exactly(base):
    assert_exact(*base)


def _cls_rows_swapped(index: torch.Tensor, rows: int) -> None:
    """The cls token's row as query read for it as key, and the other way round."""
    index[0, 1:], index[1:, 0] = rows - 2, rows - 3


def _mirrored(index: torch.Tensor, rows: int) -> None:
    """The patch offsets read at key - query."""
    index[1:, 1:] = rows - 4 - index[1:, 1:]


@pytest.mark.parametrize("wrong", [_cls_rows_swapped, _mirrored])
def test_a_wrong_wiring_shows(base, wrong):
    model, x, want = base
    tables = [m for m in model.modules() if isinstance(m, RelPosTokenAttention)]
    saved = [m.rel_pos_index.clone() for m in tables]
    for m in tables:  # in place, restored after: a copy of ViT-B costs more than its forward
        wrong(m.rel_pos_index, m.rel_pos_bias.weight.shape[0])
    try:
        with torch.no_grad():
            assert (model(x) - want).abs().max() > 10 * TOLERANCE
    finally:
        for m, index in zip(tables, saved):
            m.rel_pos_index.copy_(index)


def test_the_cls_rows_follow_the_patch_offsets():
    index = cls_relative_index(2, 3, cls=True)
    rows = 3 * 5
    assert index.shape == (7, 7)
    assert index[0, 0] == rows + 2 and (index[0, 1:] == rows).all() and (index[1:, 0] == rows + 1).all()
    # patch (0, 0) to patch (1, 2): query - key = (-1, -2), at (−1 + 1)·5 + (−2 + 2)
    assert index[1, 6] == 0 and index[6, 1] == (1 + 1) * 5 + 2 + 2
    assert cls_relative_index(2, 3, cls=False).shape == (6, 6)


def test_the_family_covers_every_name_timm_registers():
    # beit3_* are BEiT-3's multiway transformer (timm's beit3.py), another architecture
    assert sorted(beit.MODELS) == sorted(timm.list_models("beit_*") + timm.list_models("beitv2_*"))
    # the names a variant is as it stands (BEiT v2 large starts its LayerScale where v1 large does)
    assert vt.variants()["beit"] == {"base": ["beit_base_patch16_224"],
                                     "large": ["beit_large_patch16_224", "beitv2_large_patch16_224"]}
    assert vt.target("beitv2_base_patch16_224") == ("beit", "base", {"layer_scale": 1e-5})
    assert vt.target("beit_large_patch16_512") == ("beit", "large", {"image_size": 512})


def test_the_options_say_where_they_fit(tmp_path):
    def check(layers: str):
        path = tmp_path / "x.yaml"
        path.write_text("name: x\ninput: {image: [3, 8, 8]}\nlayers:\n" + layers)
        return vitdsl.validate(path)

    with pytest.raises(VitdslError, match="qkv_bias: qv \\(query and value biases, no key bias: BEiT, EVA-02\\) is "
                                          "an option of global-attn, not of local-attn"):
        check("  - local-attn: {window: 4, qkv_bias: qv}\n")
    with pytest.raises(VitdslError, match="rel_pos_bias: table has rows for one leading cls token at most, but 2 "
                                          "lead and 0 trail the patch tokens"):
        check("  - patchify: {patch: 4, dim: 32}\n  - tokens: {cls: 2}\n"
              "  - global-attn: {heads: 2, rel_pos_bias: table}\n")
