"""RoPE turns its channel pairs as one complex product in eager float32 and float64 (``attention/rope.py``,
``turn``): the real form timm writes (which compilers and exporters get), bit for bit where the complex kernel
runs vectorized, a rounding apart in its scalar tail (heads of 8 channels), forward and backward."""
import pytest
import torch

from vitdsl.blocks.modules.attention.rope import AxialRope, MixedRope, real_turn, turn


def tables(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.rand(n, d // 2) * 6.3
    return angles.cos().repeat_interleave(2, -1), angles.sin().repeat_interleave(2, -1)


@pytest.mark.parametrize("prefix", [0, 1, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_complex_product_is_the_real_form_to_the_bit(prefix, dtype):
    torch.manual_seed(0)
    cos, sin = (t.to(dtype) for t in tables(49, 16))
    t = torch.randn(2, 3, prefix + 49, 16, dtype=dtype, requires_grad=True)
    fast, slow = turn(t, cos, sin, prefix), real_turn(t, cos, sin, prefix)
    assert torch.equal(fast, slow)
    assert torch.equal(fast[..., :prefix, :], t[..., :prefix, :])  # the leading tokens as they were
    g = torch.randn_like(fast)
    (fast_grad,) = torch.autograd.grad(fast, t, g)
    (slow_grad,) = torch.autograd.grad(slow, t, g)
    assert (fast_grad - slow_grad).abs().max() <= 1e-6


def test_strided_queries_and_other_dtypes():
    torch.manual_seed(0)
    cos, sin = tables(10, 8)
    qkv = torch.randn(2, 11, 3, 2, 8).permute(2, 0, 3, 1, 4)  # (3, B, heads, N, d) views, as qkv_heads gives
    for t in (qkv[0], qkv[1], qkv[2], torch.randn(2, 2, 11, 16)[..., 3:11]):  # the last: an odd offset
        assert (turn(t, cos, sin, 1) - real_turn(t, cos, sin, 1)).abs().max() <= 1e-6
    half = torch.randn(2, 2, 11, 8, dtype=torch.bfloat16)  # no complex bfloat16: the real form
    assert torch.equal(turn(half, cos.bfloat16(), sin.bfloat16(), 1), real_turn(half, cos.bfloat16(),
                                                                                 sin.bfloat16(), 1))


def test_the_ropes_turn_as_before():
    torch.manual_seed(0)
    axial = AxialRope(16, (4, 5), prefix=1, ref=None, theta=10000.0)
    mixed = MixedRope(16, heads=2, grid=(4, 5), prefix=1, theta=100.0)
    t = torch.randn(3, 2, 21, 16)
    assert torch.equal(axial(t), real_turn(t, axial.cos, axial.sin, 1))
    angles = mixed.first.unsqueeze(-1) * mixed.freqs[0].unsqueeze(-2) + mixed.second.unsqueeze(-1) * \
        mixed.freqs[1].unsqueeze(-2)
    cos, sin = angles.cos().repeat_interleave(2, -1), angles.sin().repeat_interleave(2, -1)
    assert torch.equal(mixed(t), real_turn(t, cos, sin, 1))
    assert torch.equal(axial(t[..., :1, :]), t[..., :1, :])  # the class token's query alone: not turned
    assert torch.equal(axial(t[..., :6, :]), real_turn(t[..., :6, :], axial.cos[:5], axial.sin[:5], 1))
