"""DINO and EsViT: with the same weights (student, projectors, teacher, centres) and the same views, the loss
equals vit-pytorch's, the moving averages move alike and a second step still agrees; every trainable
parameter trains (the teacher none); the default augmentation (kornia) runs; mistakes are refused."""
import pytest
import torch
import torch.nn.functional as F
from objective_refs import grads_reach_every_parameter

import vitdsl
from vitdsl import VitdslError
from vitdsl.interop.vit_pytorch import import_weights

K, HIDDEN, LAYERS = 12, 16, 3
HEAD = {"K": K, "projection_hidden": HIDDEN, "projection_layers": LAYERS, "center_moving_average_decay": 0.8}
DINO = {"encoder.image_size": 32, "encoder.patch": 8, "encoder.dim": 32, "encoder.depth": 2, "encoder.heads": 2,
        "encoder.dim_head": 8, "encoder.mlp": 64, "encoder.classes": 5, **HEAD}
CVT = {"encoder.image_size": 64, "encoder.dims": [8, 16, 24], "encoder.heads": [1, 2, 2],
       "encoder.depths": [1, 1, 1], "encoder.classes": 5, **HEAD}
SETTINGS = dict(projection_hidden_size=HIDDEN, num_classes_K=K, projection_layers=LAYERS, student_temp=0.9,
                teacher_temp=0.04, moving_average_decay=0.9, center_moving_average_decay=0.8)


# deterministic stand-ins for the random augmentations and crops, the same on both sides
def augment(x):
    return x


def augment2(x):
    return 0.5 * x + 0.1


def local_crop(x):
    return F.interpolate(x[..., 4:-8, 2:-2], size=x.shape[-2:], mode="bilinear")


def global_crop(x):
    return x.flip(-1)


VIEWS = dict(augment=augment, augment2=augment2, local_crop=local_crop, global_crop=global_crop)


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: one thread is faster, and far faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def dino_reference():
    from vit_pytorch import ViT
    from vit_pytorch.dino import Dino

    v = ViT(image_size=32, patch_size=8, num_classes=5, dim=32, depth=2, heads=2, dim_head=8, mlp_dim=64)
    return Dino(v, image_size=32, hidden_layer="to_latent", augment_fn=augment, augment_fn2=augment2, **SETTINGS)


def esvit_reference():
    from vit_pytorch.cvt import CvT
    from vit_pytorch.es_vit import EsViTTrainer

    cvt = CvT(num_classes=5, s1_emb_dim=8, s1_heads=1, s1_depth=1, s2_emb_dim=16, s2_heads=2, s2_depth=1,
              s3_emb_dim=24, s3_heads=2, s3_depth=1)
    ref = EsViTTrainer(cvt, image_size=64, hidden_layer="layers", augment_fn=augment, augment_fn2=augment2,
                       **SETTINGS)
    # vit-pytorch feeds the region projector (B, H·W, C) tokens, so its L2Norm (dim=1) normalises each
    # channel over the positions; L2-normalising each region's vector is meant (and what the view projector does)
    ref.student_encoder.region_projector.net[2 * (LAYERS - 1)].forward = lambda x, eps=1e-6: F.normalize(x, dim=-1,
                                                                                                         eps=eps)
    ref.teacher_encoder.region_projector.net[2 * (LAYERS - 1)].forward = lambda x, eps=1e-6: F.normalize(x, dim=-1,
                                                                                                         eps=eps)
    return ref


CASES = {"dino": (dino_reference, DINO, 32), "esvit": (esvit_reference, CVT, 64)}


def pair(kind):
    make, overrides, size = CASES[kind]
    torch.manual_seed(0)
    ref = make()
    for name, fn in (("local_crop", local_crop), ("global_crop", global_crop)):  # vit-pytorch hard-codes them
        delattr(ref, name)
        setattr(ref, name, fn)
    ours = vitdsl.build(f"objectives/{kind}", overrides=overrides, **VIEWS)
    mapping = import_weights(ours, ref)
    return ref, ours, mapping, size


def step(module, lr=0.5):
    with torch.no_grad():
        for p in module.parameters():
            if p.grad is not None:
                p -= lr * p.grad
                p.grad = None


@pytest.mark.parametrize("kind", ["dino", "esvit"])
def test_loss_moving_averages_and_a_second_step_equal_vit_pytorch(kind):
    ref, ours, mapping, size = pair(kind)
    for i in range(2):
        x = torch.randn(3, 3, size, size)
        expected, got = ref(x), ours(x)
        assert abs(got.item() - expected.item()) <= 1e-5, (i, got.item(), expected.item())
        expected.backward()
        got.backward()
        step(ref)
        step(ours)
        ref.update_moving_average()
        ours.update_moving_average()
        theirs, mine = ref.state_dict(), ours.state_dict()
        moved = [k for k in mapping if k.startswith("teacher")]
        assert moved and all(torch.allclose(theirs[k].reshape(mine[mapping[k]].shape), mine[mapping[k]], atol=1e-6)
                             for k in moved)
    # the teacher really moved away from the student, and the centres from zero
    assert not torch.equal(ours.teacher.encoder.state_dict()[next(iter(ours.encoder.state_dict()))],
                           next(iter(ours.encoder.state_dict().values())))
    assert all(torch.any(getattr(ours, f"{c}_centers") != 0) for c in ours.centres)
    ours.reset_moving_average()
    assert all(torch.equal(a, b) for a, b in zip(ours.teacher.encoder.parameters(), ours.encoder.parameters()))


@pytest.mark.parametrize("kind", ["dino", "esvit"])
def test_backward_reaches_every_trainable_parameter_and_never_the_teacher(kind):
    _, overrides, size = CASES[kind]
    torch.manual_seed(0)
    ours = vitdsl.build(f"objectives/{kind}", overrides=overrides, **VIEWS)
    ours(torch.randn(2, 3, size, size)).backward()
    assert grads_reach_every_parameter(ours) == []
    teacher = list(ours.teacher.parameters())
    assert teacher and all(not p.requires_grad and p.grad is None for p in teacher)
    # the classifier head is not built: the student holds the encoder up to the embedding and the projectors
    assert "head" not in dict(ours.encoder.named_children())


def test_esvit_takes_tokens_on_a_patch_grid():
    # Simple ViT has no class token: its normalised patch tokens (4×4) are the regions
    from vitdsl.blueprint.load import from_data
    from vitdsl.objectives.module import compile_objective

    data = vitdsl.load("objectives/esvit", overrides=HEAD).to_dict()
    data["encoder"] = {"blueprint": "simple_vit", "set": {"image_size": 32, "patch": 8, "dim": 32, "depth": 1,
                                                           "heads": 2, "dim_head": 8, "mlp": 64}}
    data["params"]["embedding"] = "norm"
    design = from_data(data).resolve()
    assert design.values == {"embedding_dim": 32, "regions": 16}
    torch.manual_seed(0)
    ours = compile_objective(design, **VIEWS)
    ours(torch.randn(2, 3, 32, 32)).backward()
    assert grads_reach_every_parameter(ours) == []


def test_the_default_augmentation_runs_and_keeps_shapes():
    pytest.importorskip("kornia")
    torch.manual_seed(0)
    ours = vitdsl.build("objectives/dino", overrides=DINO)
    x = torch.rand(2, 3, 32, 32)
    local, glob = ours.crops(x)
    assert [tuple(t.shape) for t in local + glob] == [(2, 3, 32, 32)] * 4
    assert torch.isfinite(ours(x))
    assert ours.view("augment2") is not ours.view("augment")  # each view draws its own
    mine = vitdsl.build("objectives/dino", overrides=DINO, augment=augment)
    assert mine.view("augment2") is augment  # augment2 follows augment when only that is given


def test_a_missing_kornia_is_named_with_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_kornia(name, *args, **kwargs):
        if name.startswith("kornia"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_kornia)
    ours = vitdsl.build("objectives/dino", overrides=DINO)  # building needs no kornia, the first loss does
    with pytest.raises(VitdslError) as e:
        ours(torch.rand(2, 3, 32, 32))
    assert e.value.message == "the default augmentations of DINO and EsViT need kornia, which is not installed"
    assert e.value.hint.startswith("pip install vitdsl[augment]")


def test_readme_sizes():
    # vit-pytorch's Dino (README arguments) trains 59,232,800 parameters (its student_encoder), of which the
    # classifier head (1,025,000) is never run; its EsViTTrainer 52,013,208, of which the head is 385,000
    assert vitdsl.summary("objectives/dino").total_params == 59_232_800 - 1_025_000
    assert vitdsl.summary("objectives/esvit").total_params == 52_013_208 - 385_000


def test_encoder_weights_load_into_the_classifier():
    ours = vitdsl.build("objectives/dino", overrides=DINO, **VIEWS)
    vit = vitdsl.build("vit", overrides={k.removeprefix("encoder."): v for k, v in DINO.items()
                                         if k.startswith("encoder.")})
    result = vit.load_state_dict(ours.encoder.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["head.fc.bias", "head.fc.weight"] and result.unexpected_keys == []


def test_an_unknown_embedding_layer_is_refused():
    with pytest.raises(VitdslError) as e:
        vitdsl.validate("objectives/dino", overrides=DINO | {"embedding": "to_latent"})
    assert e.value.message == "dino: the encoder 'vit' has no layer 'to_latent'"
    assert e.value.hint == ("its layers: blocks, blocks.0.attn, blocks.0.ff, blocks.1.attn, blocks.1.ff, head, norm, "
                            "patchify, pool, pos_embed, tokens")
    assert str(e.value.location).endswith("dino.yaml:10:5")


def test_an_esvit_embedding_without_regions_is_refused():
    with pytest.raises(VitdslError) as e:
        vitdsl.validate("objectives/esvit", overrides=CVT | {"embedding": "pool"})
    assert e.value.message == ("esvit: the embedding layer 'pool' gives vector 24; EsViT compares regions, so it "
                               "needs a feature map, or tokens on a patch grid without special tokens")
    assert e.value.hint == "name the layer before the pooling, embedding: stages.2.blocks.0.ff"
    from vitdsl.blueprint.load import from_data

    bad = vitdsl.load("objectives/esvit", overrides=HEAD).to_dict()
    bad["encoder"] = {"blueprint": "vit", "set": {k.removeprefix("encoder."): v for k, v in DINO.items()
                                                  if k.startswith("encoder.")}}
    bad["params"]["embedding"] = "norm"
    with pytest.raises(VitdslError) as e:
        from_data(bad).resolve()
    assert e.value.message.startswith("esvit: the embedding layer 'norm' gives tokens 17×32; EsViT compares")
    assert e.value.hint == "choose a layer of the encoder's body before any class token joins or pooling"


def test_a_projector_of_the_wrong_input_and_unknown_arguments_are_refused():
    from vitdsl.blueprint.load import from_data

    bad = vitdsl.load("objectives/dino", overrides=DINO).to_dict()
    bad["parts"]["projector"]["input"] = {"tokens": [17, 32]}
    with pytest.raises(VitdslError) as e:
        from_data(bad).resolve()
    assert e.value.path == "projector"
    assert e.value.message == "part 'projector' takes tokens 17×32, but the objective feeds it vector 32"
    assert e.value.hint == "write its input as {vector: [32]}"
    with pytest.raises(VitdslError) as e:
        vitdsl.build("objectives/dino", overrides=DINO, augment_fn=augment)
    assert e.value.message == "dino takes augment, augment2, local_crop, global_crop, not 'augment_fn'"
