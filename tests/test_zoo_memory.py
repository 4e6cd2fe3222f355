"""Learnable-memory ViT: the adapter form, the stacked-tensor split in weight import, vitdsl.share
(several adapters over one frozen backbone), the pool index and outputs switched off by `when`."""
import pytest
import torch
from torch import nn
from vit_pytorch.learnable_memory_vit import Adapter, ViT

import vitdsl
from vitdsl.blocks.heads import Pool
from vitdsl.blocks.shape import Shape
from vitdsl.errors import ShapeError, VitdslError
from vitdsl.interop.transfer import import_state_dict
from vitdsl.interop.vit_pytorch import import_weights

SMALL = {"image_size": 32, "patch": 8, "dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp": 64,
         "classes": 10}


def adapter(memories=5, task_classes=2, **small):
    return vitdsl.build("learnable_memory_vit", overrides={**small, "adapter": True, "memories": memories,
                                                           "adapter_classes": task_classes}).eval()


def readme_vit():
    return ViT(image_size=256, patch_size=16, num_classes=1000, dim=1024, depth=6, heads=8, mlp_dim=2048)


# -- split rule ------------------------------------------------------------------------------------
class Layers(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Module() for _ in range(n))
        for b in self.blocks:
            b.memories = nn.Parameter(torch.zeros(2, 3))


def test_split_fills_layers_in_numeric_order():
    model, stacked = Layers(11), torch.randn(11, 2, 3)
    mapping = import_state_dict(model, {"mem": stacked}, [(r"mem$", "blocks.*.memories")])
    for i in range(11):  # blocks.10 after blocks.9, not after blocks.1
        assert torch.equal(model.blocks[i].memories, stacked[i])
        assert mapping[f"mem[{i}]"] == f"blocks.{i}.memories"


def test_split_count_must_agree():
    with pytest.raises(VitdslError) as e:
        import_state_dict(Layers(3), {"mem": torch.randn(4, 2, 3)}, [(r"mem$", "blocks.*.memories")])
    assert "'mem' (4, 2, 3) splits into 4 slice(s), but the blueprint has 3 tensor(s) 'blocks.*.memories'" \
        in str(e.value)


def test_split_slices_must_fit():
    with pytest.raises(VitdslError) as e:
        import_state_dict(Layers(2), {"mem": torch.randn(2, 4, 3)}, [(r"mem$", "blocks.*.memories")])
    assert "'mem'[0] (4, 3) does not fit 'blocks.0.memories' (2, 3)" in str(e.value)


# -- the adapter form --------------------------------------------------------------------------------
def test_adapter_keeps_the_backbone_paths_and_its_output():
    vit, ad = vitdsl.build("learnable_memory_vit", overrides=SMALL).eval(), adapter(**SMALL)
    assert set(vit.state_dict()) < set(ad.state_dict())
    vitdsl.share(ad, vit)
    x = torch.randn(2, *vit.input_shape)
    with torch.no_grad():
        before = vit(x)
        backbone, task = ad(x)
        after = vit(x)
    assert task.shape == (2, 2)
    assert torch.allclose(backbone, before, atol=1e-5)  # the task token and memories do not reach it
    assert torch.equal(before, after)


def test_adapter_parity_at_small_size():
    torch.manual_seed(0)
    ref = Adapter(vit=ViT(image_size=32, patch_size=8, num_classes=10, dim=32, depth=2, heads=2, dim_head=16,
                          mlp_dim=64), num_memories_per_layer=3, num_classes=4).eval()
    ours = adapter(3, 4, **SMALL)
    import_weights(ours, ref)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (ours(x)[1] - ref(x)).abs().max() <= 1e-5
        assert (ours(x)[0] - ref.vit(x)).abs().max() <= 1e-5


def test_base_variant_matches_the_reference_count():
    with torch.device("meta"):
        ref = ViT(image_size=224, patch_size=16, num_classes=1000, dim=768, depth=12, heads=12, mlp_dim=3072)
        ref_adapter = Adapter(vit=ref, num_memories_per_layer=5, num_classes=2)
    def count(m):
        return sum(p.numel() for p in m.parameters())

    # the paper's sizes on vit-pytorch's blocks: the base variant with vit-pytorch's overlay
    assert vitdsl.summary("learnable_memory_vit", "base", compat="vit-pytorch").total_params == count(ref)
    assert vitdsl.summary("learnable_memory_vit", "base", {"adapter": True},
                          compat="vit-pytorch").total_params == count(ref_adapter)


# -- vitdsl.share ------------------------------------------------------------------------------------
def test_two_adapters_share_one_frozen_backbone():
    backbone = vitdsl.build("learnable_memory_vit", overrides=SMALL)
    one, two = adapter(5, 2, **SMALL), adapter(10, 4, **SMALL)
    shared = vitdsl.share(one, backbone)
    assert shared == list(backbone.state_dict())
    assert vitdsl.share(two, backbone) == shared
    for name, p in backbone.named_parameters():
        assert not p.requires_grad
        assert one.get_parameter(name) is p and two.get_parameter(name).data_ptr() == p.data_ptr()
    own = {n for n, p in one.named_parameters() if p.requires_grad}
    assert own == {"memory_cls.cls", *(f"blocks.{i}.attn.memories" for i in range(2)),
                   "adapter_head.norm.weight", "adapter_head.norm.bias", "adapter_head.fc.weight",
                   "adapter_head.fc.bias"}
    loss = one(torch.randn(1, 3, 32, 32))[1].sum()
    loss.backward()
    assert all(p.grad is None for p in backbone.parameters())


@pytest.mark.parametrize("memories,classes", [(5, 2), (10, 4)])
def test_trainable_count_equals_the_reference_adapter(memories, classes):
    with torch.device("meta"):
        ref = Adapter(vit=readme_vit(), num_memories_per_layer=memories, num_classes=classes)
        backbone = vitdsl.build("learnable_memory_vit", device="meta")
        ours = vitdsl.build("learnable_memory_vit", overrides={"adapter": True, "memories": memories,
                                                               "adapter_classes": classes}, device="meta")
    vitdsl.share(ours, backbone)
    def trainable(m):
        return sum(p.numel() for p in m.parameters() if p.requires_grad)

    assert trainable(ours) == trainable(ref) == {5: 35_842, 10: 68_612}[memories]


def test_share_without_common_tensors_is_an_error():
    with pytest.raises(VitdslError) as e:
        vitdsl.share(nn.Linear(2, 2), nn.Linear(3, 3))
    assert "no parameter or buffer of the model has a path and shape that the source has" in str(e.value)


def test_share_leaves_different_shapes_alone():
    backbone = vitdsl.build("learnable_memory_vit", overrides=SMALL)
    other = adapter(**{**SMALL, "classes": 7})
    shared = vitdsl.share(other, backbone, freeze=False)
    assert "head.fc.weight" not in shared and other.head.fc.weight.requires_grad
    assert all(p.requires_grad for p in backbone.parameters())


# -- pool index and outputs switched off ----------------------------------------------------------------
def test_pool_index_beyond_the_special_tokens():
    with pytest.raises(ShapeError) as e:
        Pool(mode="cls", index=1).infer(Shape.tokens(17, 32, prefix=1))
    assert e.value.message == "'pool: cls' takes special token 1, but only 1 lead the sequence"


def test_pool_index_is_for_cls_only():
    with pytest.raises(ShapeError, match="pool index 1 is for mode cls, not mean"):
        Pool(mode="mean", index=1).infer(Shape.tokens(17, 32, prefix=1))


def test_output_switched_off_by_when_is_left_out():
    vit = vitdsl.build("learnable_memory_vit", overrides=SMALL)
    assert isinstance(vit(torch.randn(1, 3, 32, 32)), torch.Tensor)
    assert len(adapter(**SMALL)(torch.randn(1, 3, 32, 32))) == 2
