"""ATS ViT: adaptive token sampling (sampling-attn), its padding convention (Padding extras) and the
token ids it returns, on small models."""
import pytest
import torch
from vit_pytorch.ats_vit import ViT

import vitdsl
from vitdsl.blocks import Shape, lookup
from vitdsl.blocks.modules.token_sampling import Padding
from vitdsl.interop.vit_pytorch import import_weights

SMALL = {"image_size": 32, "patch": 4, "dim": 32, "max_tokens": [16, 16, 4], "heads": 2, "dim_head": 16,
         "mlp": 64}


def pair(max_tokens=(16, 16, 4)):
    """A small reference and our blueprint with its weights, both in eval mode."""
    torch.manual_seed(0)
    ref = ViT(image_size=32, patch_size=4, num_classes=1000, dim=32, depth=len(max_tokens),
              max_tokens_per_depth=tuple(max_tokens), heads=2, dim_head=16, mlp_dim=64, dropout=0.1,
              emb_dropout=0.1).eval()
    model = vitdsl.build("ats_vit", overrides={**SMALL, "max_tokens": list(max_tokens)}).eval()
    import_weights(model, ref)
    return ref, model


def seeded(seed, call):
    torch.manual_seed(seed)
    with torch.no_grad():
        return call()


# (16, 16, 4): layer 1 does not sample but must mask the padding layer 0 left; (64, 8, 8): no sampling
# in layer 0, none in layer 2 either; (63, 62, 61): only layer 0 samples, keeping up to 63 of 64.
@pytest.mark.parametrize("max_tokens", [(16, 16, 4), (64, 8, 8), (63, 62, 61)])
@pytest.mark.parametrize("batch", [1, 5])
def test_small_models_match_the_reference_for_every_seed(max_tokens, batch):
    ref, model = pair(max_tokens)
    x = torch.randn(batch, 3, 32, 32)
    for seed in range(4):
        logits, ids = seeded(seed, lambda: ref(x, return_sampled_token_ids=True))
        ours_logits, ours_ids = seeded(seed, lambda: model(x))
        assert torch.equal(ours_ids, ids)
        assert (ours_logits - logits).abs().max() <= 1e-5
        assert torch.equal(seeded(seed, lambda: ref(x)), logits)  # the flag changes only what is returned


def test_token_ids_are_distinct_sorted_patch_indices_padded_with_minus_one():
    _, model = pair((32, 16, 8))
    logits, ids = seeded(0, lambda: model(torch.randn(16, 3, 32, 32)))
    assert logits.shape == (16, 1000)
    assert ids.dtype == torch.int64 and ids.dim() == 2 and ids.shape[0] == 16 and 1 <= ids.shape[1] <= 8
    assert ((ids >= -1) & (ids < 64)).all()
    for row in ids.tolist():
        kept = [i for i in row if i >= 0]
        assert kept and kept == sorted(set(kept))
        assert row == kept + [-1] * (len(row) - len(kept))  # padding only at the right end
    assert (ids == -1).any(), "a batch of 16 should keep different numbers of tokens"
    assert ids.shape[1] == max(int((r >= 0).sum()) for r in ids)  # padded to the batch's most, no further


def test_sampling_is_random_in_eval_and_repeats_with_the_seed():
    _, model = pair((32, 16, 8))
    x = torch.randn(4, 3, 32, 32)
    first = seeded(0, lambda: model(x))
    assert all(torch.equal(a, b) for a, b in zip(first, seeded(0, lambda: model(x))))
    assert any(not torch.equal(first[1], seeded(s, lambda: model(x))[1]) for s in range(1, 4))


def build(samples, **fields):
    spec = lookup("sampling-attn")(samples=samples, heads=2, dim_head=16, **fields)
    shape = Shape.tokens(17, 32, grid=(4, 4), prefix=1)
    return spec, shape, spec.build(shape).eval()


def test_padding_rows_never_reach_real_tokens():
    _, _, attn = build(4)
    torch.manual_seed(0)
    x = torch.randn(3, 17, 32)
    mask = torch.ones(3, 17, dtype=torch.bool)
    mask[0, 11:] = False
    mask[2, 5:] = False
    ids = torch.arange(17).expand(3, 17)
    outs = []
    for scale in (0.0, 100.0):  # the padding rows hold anything: here zeros, or large noise
        garbage = torch.where(mask[..., None], x, scale * torch.randn(3, 17, 32))
        out, padding = seeded(1, lambda: attn(garbage, extras=Padding(mask, ids)))
        outs.append((out, padding.mask, padding.ids))
    (a, mask_a, ids_a), (b, mask_b, ids_b) = outs
    assert torch.equal(mask_a, mask_b) and torch.equal(ids_a, ids_b)
    assert torch.equal(a[mask_a], b[mask_b])
    assert (ids_a[0][mask_a[0]] < 11).all() and (ids_a[2][mask_a[2]] < 5).all()  # padding is never drawn


def test_without_sampling_it_is_global_attention():
    spec, shape, attn = build(16)  # 16 tokens after cls: nothing to drop
    plain = lookup("global-attn")(heads=2, dim_head=16).build(shape).eval()
    plain.load_state_dict(attn.state_dict())
    x = torch.randn(2, 17, 32)
    with torch.no_grad():
        out, padding = attn(x)
        assert padding.mask.all()
        assert torch.equal(padding.ids, torch.arange(17).expand(2, 17))
        assert torch.allclose(out, plain(x), atol=1e-6)
    assert spec.infer(shape) == shape and spec.pattern(shape) == "global"


def test_sampled_shape_rule_is_an_upper_bound():
    spec, shape, attn = build(4)
    assert spec.infer(shape) == Shape.tokens(5, 32, prefix=1)  # a subset: no grid; only cls is sure
    assert spec.pattern(shape) == "global, samples ≤4"
    assert spec.data_dependent() and not lookup("global-attn")().data_dependent()
    out, _ = seeded(0, lambda: attn(torch.randn(8, 17, 32)))
    assert 2 <= out.shape[1] <= 5


def test_padding_travels_through_per_token_blocks_and_stops_at_pooling():
    _, model = pair((16, 16, 4))
    flow = {p: (s.gives, s.reads, s.passes) for p, s in zip(model.paths, model.steps)}  # the compiled plan
    assert flow["blocks.0.attn"] == (True, False, False)  # plain tokens come in: nothing to read
    assert flow["blocks.0.ff"] == flow["blocks.2.ff"] == (False, False, True)
    assert flow["blocks.1.attn"] == (True, True, False)
    assert flow["token_ids"] == flow["pool"] == (False, True, False)
    assert flow["head"] == (False, False, False)
    carrying = [p for p in model.paths if model._carries[p]]
    assert carrying == [f"blocks.{i}.{b}" for i in range(3) for b in ("attn", "ff")]
    assert model.chain is None


def test_training_gives_finite_gradients_to_every_parameter():
    _, model = pair((32, 16, 8))
    model.train()
    torch.manual_seed(0)
    logits, ids = model(torch.randn(6, 3, 32, 32))
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_summary_shows_the_sampling_and_the_bounds():
    summary = vitdsl.summary("ats_vit")
    rows = {r.path: r for r in summary.rows}
    assert rows["blocks.0.attn"].pattern == "global" and rows["blocks.0.attn"].output == (257, 1024)
    assert rows["blocks.1.attn"].pattern == "global, samples ≤128" and rows["blocks.1.attn"].output == (129, 1024)
    assert rows["blocks.5.ff"].output == (9, 1024) and rows["token_ids"].output == (8,)
    assert summary.total_params == 52_463_080


def test_depth_follows_max_tokens():
    graph = vitdsl.validate("ats_vit", overrides={"max_tokens": [128, 64]})
    assert ([n.path for n, _, _ in graph if getattr(n.spec, "samples", None) is not None]
            == ["blocks.0.attn", "blocks.1.attn"])
    assert graph.outputs[1] == Shape.vector(64)


@pytest.mark.parametrize("overrides,message", [
    ({"max_tokens": [32, 0, 8]}, "blocks.1.attn: field 'samples' of 'sampling-attn': Input should be greater than 0"),
    ({"max_tokens": [32, 16], "depth": 3}, "cannot index in '${max_tokens[index]}': list index out of range"),
])
def test_bad_options(overrides, message):
    with pytest.raises(vitdsl.VitdslError) as e:
        vitdsl.validate("ats_vit", overrides={**SMALL, **overrides})
    assert message in str(e.value)


def test_sampling_needs_a_class_token():
    text = """
name: no_cls
input: {image: [3, 32, 32]}
layers:
  - patchify: {patch: 4, dim: 32}
  - sampling-attn: {samples: 8, heads: 2}
  - pool: mean
"""
    with pytest.raises(vitdsl.errors.ShapeError) as e:
        vitdsl.validate(vitdsl.loads(text))
    assert e.value.message == ("token sampling scores tokens by the class token's attention, but no class token "
                               "leads the sequence (input here: tokens 64×32)")
    assert e.value.hint == "add '- tokens: {cls: 1}' before it"
    assert e.value.path == "sampling_attn"


def test_sampling_takes_none_of_the_logit_options_it_would_ignore():
    with pytest.raises(ValueError) as e:
        lookup("sampling-attn")(samples=4, head_mix="talking", qk_norm=True)
    assert [(err["loc"], err["type"]) for err in e.value.errors()] == [(("head_mix",), "extra_forbidden"),
                                                                       (("qk_norm",), "extra_forbidden")]
