"""The two options DINO's projector needed: norm type l2 and head act."""
import torch
import torch.nn.functional as F

import vitdsl


def build(layers: str, dims: str = "vector: [6]"):
    return vitdsl.build(vitdsl.loads(f"name: t\ninput: {{{dims}}}\nlayers:\n{layers}")).eval()


def test_norm_l2_divides_by_the_length_and_has_no_weights():
    model = build("  - norm: {type: l2}\n")
    x = torch.tensor([[3.0, 4.0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    out = model(x)
    assert torch.equal(out[0], torch.tensor([0.6, 0.8, 0, 0, 0, 0]))
    assert torch.equal(out[1], torch.zeros(6))  # the length is held at 1e-6 or more: no division by zero
    assert sum(p.numel() for p in model.parameters()) == 0
    y = torch.randn(2, 5, 6)
    assert torch.allclose(build("  - norm: {type: l2}\n", "tokens: [5, 6]")(y), F.normalize(y, dim=-1, eps=1e-6))


def test_head_act_follows_the_linear_map():
    model = build("  - head: {classes: 4, act: gelu}\n")
    x = torch.randn(3, 6)
    fc = model.head.fc
    assert torch.equal(model(x), F.gelu(fc(x)))
    assert sum(p.numel() for p in model.parameters()) == 6 * 4 + 4
    assert vitdsl.summary(vitdsl.loads("name: t\ninput: {vector: [6]}\nlayers:\n  - head: {classes: 4, act: gelu}\n")
                          ).rows[0].pattern == "gelu"
