"""timm's model API on compiled networks (vitdsl.graph.timm_api), derived from the graph
(vitdsl.graph.structure): a timm training script runs unchanged, and timm-exact variants agree with timm."""
import copy
import io
import pickle

import pytest
import torch
import torch.nn.functional as F

import vitdsl
from vitdsl import VitdslError
from vitdsl.graph.structure import layout

timm = pytest.importorskip("timm")
from timm.optim import create_optimizer_v2  # noqa: E402
from timm_oracle import imported  # noqa: E402

TINY_VIT = {"dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp": 64, "image_size": 32, "patch": 8,
            "classes": 10, "dropout": 0.0, "emb_dropout": 0.0}
SMALL_SWIN = {"image_size": 64, "window": 2, "dims": [16, 32, 64, 128], "depths": [1, 1, 1, 1], "dim_head": 8,
              "classes": 10}


def tiny_vit(**over):
    return vitdsl.build("vit", overrides={**TINY_VIT, **over}, seed=0)


def small_swin():
    return vitdsl.build("swin", "tiny", overrides=SMALL_SWIN, seed=0)


# -- the rules, on the graph alone ------------------------------------------------------------------
@pytest.mark.parametrize("name,variant,features,head,stages,final_norm", [
    ("vit", "tiny", "norm", ("pool", "head"), [f"blocks.{i}" for i in range(12)], "norm"),
    ("deit", "tiny", "norm", ("pool_0", "head", "pool_1", "distill_head", "merge"),
     [f"blocks.{i}" for i in range(12)], "norm"),
    ("swin", "tiny", "norm", ("pool", "head"), ["stages.0", "stages.1", "stages.2", "stages.3"], "norm"),
    ("maxvit", "tiny", "stages.3.blocks.1.grid_ff", ("pool", "head"), ["stages.0", "stages.1", "stages.2",
                                                                        "stages.3"], None),
    ("pvt_v2", "b0", "stages.3.norm", ("pool", "head"), ["stages.0", "stages.1", "stages.2", "stages.3"], None),
    # the class-attention blocks after the tokens block run in forward_features but are no stages (as timm's)
    ("cait", "xxs24", "cls_blocks.1.ff", ("pool", "head"), [f"blocks.{i}" for i in range(24)], None),
])
def test_features_head_and_stages_come_from_the_structure(name, variant, features, head, stages, final_norm):
    found = layout(vitdsl.validate(name, variant))
    assert (found.features, found.head, [s.module for s in found.stages], found.final_norm) == (
        features, head, stages, final_norm)


def test_stage_channels_and_reductions():
    swin = layout(vitdsl.validate("swin", "tiny"))
    assert [(s.path, s.channels, s.reduction) for s in swin.stages] == [
        ("stages.0.blocks.1.ff", 96, 4), ("stages.1.blocks.1.ff", 192, 8), ("stages.2.blocks.5.ff", 384, 16),
        ("stages.3.blocks.1.ff", 768, 32)]
    pvt = layout(vitdsl.validate("pvt_v2", "b0"))
    assert [(s.channels, s.reduction) for s in pvt.stages] == [(32, 4), (64, 8), (160, 16), (256, 32)]
    deit = layout(vitdsl.validate("deit", "tiny"))
    assert (deit.classifiers, deit.num_features, deit.num_classes) == (("head", "distill_head"), 192, 1000)


@pytest.mark.parametrize("name,message", [
    ("vivit", "blueprint 'vivit' takes a video (volume 3×16×128×128): timm's API is for image models, so timm's "
              "model API has no answer for it"),
    ("distill_vit", "blueprint 'distill_vit' has 2 outputs (head, distill_head): the API splits one classifier "
                    "output, so timm's model API has no answer for it"),
    ("patch_merger", "blueprint 'patch_merger' returns tokens (tokens 8×1024), not a vector: it has no head to "
                     "split off, so timm's model API has no answer for it"),
])
def test_blueprints_without_an_answer_say_so(name, message):
    model = vitdsl.build(name, device="meta", check_memory=False)
    for call in (lambda: model.forward_features(torch.zeros(1)), lambda: model.reset_classifier(3),
                 lambda: model.feature_info, lambda: model.num_classes):
        with pytest.raises(VitdslError) as e:
            call()
        assert e.value.message == message
        assert e.value.hint == "forward(x) and run(x, first, last) work on every network"
    assert model.pretrained_cfg["num_classes"] is None  # the config still describes the input


# -- the timm training script, unchanged --------------------------------------------------
def timm_training_script(model, x, y, steps=3):
    """What a timm training script does with a model it is given (create → reset_classifier →
    set_grad_checkpointing → no_weight_decay param groups → train → forward_intermediates)."""
    model.reset_classifier(3)
    model.set_grad_checkpointing(True)
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-2, weight_decay=0.05)  # reads no_weight_decay()
    decayed = create_optimizer_v2(model, "adamw", lr=1e-2, weight_decay=0.05, layer_decay=0.75)  # group_matcher()
    model.train()
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
    return losses, optimizer, decayed, final, intermediates


def test_the_timm_training_script_runs_on_a_vit():
    torch.manual_seed(0)
    model = tiny_vit()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    losses, optimizer, decayed, final, intermediates = timm_training_script(model, x, y)
    assert losses[-1] < losses[0]
    assert model.get_classifier().out_features == 3 and model(x).shape == (4, 3) and model.num_classes == 3
    no_decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(model.pos_embed.pos) in no_decay and id(model.tokens.cls) in no_decay
    assert id(model.blocks[0].attn.qkv.weight) not in no_decay
    scales = sorted({round(g["lr_scale"], 4) for g in decayed.param_groups})
    assert scales == [0.4219, 0.5625, 0.75, 1.0]  # stem, blocks.0, blocks.1, norm and head: 0.75 ** (3 - k)
    assert final.shape == (4, 17, 32) and [t.shape for t in intermediates] == [(4, 32, 4, 4)] * 2


def test_the_timm_training_script_runs_on_a_swin():
    torch.manual_seed(0)
    model = small_swin()
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    losses, _, _, final, intermediates = timm_training_script(model, x, y, steps=2)
    assert losses[-1] < losses[0]
    assert final.shape == (2, 128, 2, 2)
    assert [tuple(t.shape) for t in intermediates] == [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4), (2, 128, 2, 2)]
    assert model.feature_info.channels() == [16, 32, 64, 128] and model.feature_info.reduction() == [4, 8, 16, 32]


# -- the pieces ---------------------------------------------------------------------------------------
def test_checkpointing_recomputes_each_iteration_in_backward_with_the_same_gradients():
    x = torch.randn(2, 3, 32, 32)

    def grads(checkpointing):
        model = tiny_vit(dropout=0.1)  # dropout too: checkpoint replays the random state
        model.train().set_grad_checkpointing(checkpointing)
        calls = []
        for k in range(2):
            model.blocks[k].ff.register_forward_pre_hook(lambda *_, k=k: calls.append(k))
        torch.manual_seed(3)
        model(x).square().sum().backward()
        return calls, [p.grad for p in model.parameters()]

    plain, want = grads(False)
    again, got = grads(True)
    assert plain == [0, 1] and again == [0, 1, 1, 0]  # each block ran again, in the backward pass (last first)
    assert all(torch.equal(a, b) for a, b in zip(want, got))
    model = tiny_vit()
    model.set_grad_checkpointing()
    with torch.no_grad():  # nothing to recompute without gradients
        assert torch.equal(model(x), tiny_vit()(x))


def test_features_and_head_split_the_forward():
    model = tiny_vit().eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.forward_features(x)
    # forward computes the last block for the cls token alone (the same sums, another GEMM shape)
    torch.testing.assert_close(model.forward_head(features), model(x), rtol=0, atol=1e-6)
    model.skip_unread_tokens = False
    assert torch.equal(model.forward_head(features), model(x))
    assert torch.equal(model.forward_head(features, pre_logits=True), features[:, 0])  # the cls token
    assert (model.num_features, model.num_classes, model.head_hidden_size) == (32, 10, 32)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), torch.nn.Identity) and torch.equal(model(x), features[:, 0])
    assert model.output_shape == (32,)


def test_global_pool_and_headless_resets_are_refused_clearly():
    model = tiny_vit()
    model.reset_classifier(5, global_pool="token")  # the pool it has: fine
    with pytest.raises(VitdslError) as e:
        model.reset_classifier(5, global_pool="avg")
    assert e.value.message == "global_pool='avg': this network pools with token; another pool is a blueprint change"
    headless = tiny_vit(classes=0)
    headless.reset_classifier(0)
    with pytest.raises(VitdslError) as e:
        headless.reset_classifier(5)
    assert e.value.message == "blueprint 'vit' has no classifier to reset (its head is pool)"


def test_deit_has_two_classifiers_reset_together():
    model = vitdsl.build("deit", overrides={"dim": 32, "depth": 1, "heads": 2, "mlp": 32, "image_size": 32,
                                            "patch": 16}, seed=0).eval()
    head, distill = model.get_classifier()
    assert head is model.head.fc and distill is model.distill_head.fc
    model.reset_classifier(4)
    assert [fc.out_features for fc in model.get_classifier()] == [4, 4]
    x = torch.randn(1, 3, 32, 32)
    f = model.forward_features(x)
    assert torch.allclose(model.forward_head(f, pre_logits=True), (f[:, 0] + f[:, 1]) / 2)  # timm's distilled


def test_repeats_are_indexed_by_position_and_the_model_still_saves_and_copies():
    model = tiny_vit()
    assert model.blocks[0] is model.blocks["0"] and model.blocks[-1] is model.blocks["1"]
    with pytest.raises(IndexError, match="^index 2 is out of range: this repeat has 2 iterations$"):
        model.blocks[2]
    assert [k for k in model.state_dict() if k.startswith("blocks.0.attn.")][:2] == ["blocks.0.attn.norm.weight",
                                                                                     "blocks.0.attn.norm.bias"]
    x = torch.randn(1, 3, 32, 32)
    model.eval()
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert twin.blocks[1] is twin.blocks["1"] and torch.equal(twin(x), model(x))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False).forward_features(x), model.forward_features(x))
    # torch.compile (no graph breaks) runs on every network's Layers containers in tests/test_module.py


def test_features_only_builds_a_backbone():
    swin = vitdsl.build("swin", "tiny", overrides=SMALL_SWIN, seed=0, features=True)
    maps = swin(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
    assert swin.feature_info.module_name() == ["stages.0", "stages.1", "stages.2", "stages.3"]
    assert not any(k.startswith(("norm.", "head.")) for k in swin.state_dict())
    vit = vitdsl.build("vit", overrides=TINY_VIT, seed=0, features=["blocks.1", "blocks.0.attn"])
    assert [tuple(m.shape) for m in vit(torch.randn(1, 3, 32, 32))] == [(1, 32, 4, 4)] * 2
    assert vit.feature_info == [{"num_chs": 32, "reduction": 8, "module": "blocks.0.attn"},
                                {"num_chs": 32, "reduction": 8, "module": "blocks.1"}]
    with pytest.raises(VitdslError) as e:
        vitdsl.build("vit", overrides=TINY_VIT, features=["head"])
    assert e.value.message == "features names 'head', which is no stage or layer before the head"
    assert e.value.hint == "stages: blocks.0, blocks.1"


# -- against timm -------------------------------------------------------------------------------------
def test_a_timm_exact_vit_answers_as_timm():
    ref, model, x = imported("vit_tiny_patch16_224")
    with torch.no_grad():
        want, got = ref.forward_features(x), model.forward_features(x)
        assert (got - want).abs().max() < 1e-5
        assert (model.forward_head(got, pre_logits=True) - ref.forward_head(want, pre_logits=True)).abs().max() < 1e-5
        for kwargs in ({}, {"indices": 2, "norm": True}, {"indices": [0, -1], "output_fmt": "NLC"},
                       {"indices": [3], "return_prefix_tokens": True, "intermediates_only": True}):
            ours, theirs = model.forward_intermediates(x, **kwargs), ref.forward_intermediates(x, **kwargs)
            ours, theirs = (ours, theirs) if "intermediates_only" in kwargs else (ours[1], theirs[1])
            flat = [t for item in ours for t in (item if isinstance(item, tuple) else (item,))]
            ref_flat = [t for item in theirs for t in (item if isinstance(item, tuple) else (item,))]
            assert [t.shape for t in flat] == [t.shape for t in ref_flat]
            assert all((a - b).abs().max() < 1e-5 * b.abs().max() for a, b in zip(flat, ref_flat))
    assert model.feature_info == [dict(f) for f in ref.feature_info]
    assert model.pretrained_cfg["architecture"] == "vit_tiny_patch16_224"
    assert model.pretrained_cfg["timm_names"] == ["vit_tiny_patch16_224", "deit_tiny_patch16_224"]
    assert model.pretrained_cfg["input_size"] == ref.pretrained_cfg["input_size"]
    assert model.no_weight_decay() == {"pos_embed.pos", "tokens.cls"}  # timm's {"pos_embed", "cls_token", …}


def test_a_timm_exact_swin_answers_as_timm():
    ref, model, x = imported("swin_tiny_patch4_window7_224")
    with torch.no_grad():
        (want, theirs), (got, ours) = ref.forward_intermediates(x), model.forward_intermediates(x)
        assert (got - want.permute(0, 3, 1, 2)).abs().max() < 1e-5  # maps are (B, C, H, W) here, timm's Swin NHWC
        assert (model.forward_head(got, pre_logits=True) - ref.forward_head(want, pre_logits=True)).abs().max() < 1e-5
        ours.append(model.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)[0])
        theirs.append(ref.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)[0])
        assert [t.shape for t in ours] == [t.shape for t in theirs]
        assert all((a - b).abs().max() < 1e-5 * b.abs().max() for a, b in zip(ours, theirs))
    assert model.feature_info.channels() == [f["num_chs"] for f in ref.feature_info] == [96, 192, 384, 768]
    assert model.feature_info.reduction() == [f["reduction"] for f in ref.feature_info] == [4, 8, 16, 32]
    assert model.pretrained_cfg["architecture"] == "swin_tiny_patch4_window7_224"


def test_networks_without_their_head_refuse_the_api():
    backbone = vitdsl.build("vit", overrides=TINY_VIT, features=True)
    for call in (lambda: backbone.forward_features(torch.zeros(1, 3, 32, 32)), backbone.get_classifier,
                 lambda: backbone.reset_classifier(2)):
        with pytest.raises(VitdslError) as e:
            call()
        assert e.value.message == ("this network holds only some layers (an objective's, or a features-only "
                                   "backbone's): timm's model API needs the whole network")


@pytest.mark.parametrize("classes", [3, 0])
def test_a_reset_classifier_is_what_the_saved_checkpoint_rebuilds(tmp_path, classes):
    model = tiny_vit().eval()
    model.reset_classifier(classes)
    assert model.blueprint.params["classes"] == classes
    vitdsl.save(model, tmp_path / "reset.pt")
    again = vitdsl.load_checkpoint(tmp_path / "reset.pt").eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(again(x), model(x)) and again.num_classes == classes


def test_a_wrapped_container_is_named_not_silently_skipped():
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    model = tiny_vit()
    model.blocks["0"] = checkpoint_wrapper(model.blocks[0])  # its forward never runs: the plan calls blocks
    with pytest.raises(VitdslError) as e:
        model(torch.randn(1, 3, 32, 32))
    assert e.value.message == "no module at blocks.0.attn: a container above it was replaced after the build"
