"""The attention core's kernel switch: every attention module's fused path equals its explicit path, and
the switch is per module or per thread, never process-wide state."""
import threading

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from vitdsl.blocks import lookup
from vitdsl.blocks.modules.attention import Attention, explicit_attention
from vitdsl.blocks.shape import Shape

IMAGE = Shape.image(16, 4, 6)
CASES = [
    ("global-attn", {"heads": 2, "dim_head": 8}, Shape.tokens(5, 16, prefix=1)),
    ("memory-attn", {"heads": 2, "dim_head": 8, "memories": 2, "task_tokens": 1}, Shape.tokens(5, 16, prefix=1)),
    ("global-attn", {"heads": 2, "dim_head": 8, "qk_norm": True, "scale": 1.0}, Shape.tokens(5, 16, prefix=1)),
    ("reduced-attn", {"heads": 2, "dim_head": 6, "dim_value": 4, "kv_reduction": 2}, IMAGE),
    ("reduced-attn", {"heads": 2, "value_conv": 3}, IMAGE),
    ("channel-attn", {"heads": 2, "dim_head": 8}, Shape.tokens(5, 16, prefix=1)),
    ("lsa-attn", {"heads": 2, "dim_head": 8}, Shape.tokens(5, 16, prefix=1)),
    ("sampling-attn", {"heads": 2, "dim_head": 8, "samples": 8}, Shape.tokens(5, 16, prefix=1)),
    ("local-attn", {"heads": 2, "window": 2}, IMAGE),
    ("local-attn", {"heads": 2, "window": 2, "partition": "grid", "rel_pos_bias": "dynamic"}, IMAGE),
    ("local-attn", {"heads": 2, "window": 2, "value_conv": 3, "rel_pos_bias": "none"}, IMAGE),
    ("cross-attn", {"heads": 2, "dim_head": 8}, Shape.tokens(5, 16, prefix=1)),
    ("conv-attn", {"heads": 2, "dim_head": 8, "kv_stride": 2}, IMAGE),
    ("separable-attn", {"heads": 2, "dim_head": 8, "window": 2}, IMAGE),
    ("attn-pool", {"heads": 2, "dim_head": 8}, Shape.tokens(5, 16)),
]


@pytest.mark.parametrize("block,fields,shape", CASES, ids=[f"{b}-{i}" for i, (b, _, _) in enumerate(CASES)])
def test_fused_path_equals_explicit_path(block, fields, shape):
    torch.manual_seed(0)
    module = lookup(block)(**fields).build(shape).eval()
    x = torch.randn(2, *shape.dims)
    # a block that gives extras (token sampling's padding) returns (tokens, extras)
    run = (lambda: module(x)[0]) if getattr(module, "gives_extras", False) else (lambda: module(x))
    with torch.no_grad():
        fused = run()
        with explicit_attention(model=module):
            explicit = run()
        with explicit_attention():
            in_context = run()
    assert (fused - explicit).abs().max() <= 1e-5
    assert torch.equal(explicit, in_context)


class SdpaCalls(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += func is F.scaled_dot_product_attention
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("fields", [{}, {"shift": 1}], ids=["bias", "bias-and-mask"])
def test_on_cpu_a_bias_is_fused_without_gradients_only(fields):
    # SDPA's CPU kernel takes a (1, heads, n, n) bias; with gradients for it, only the slower math fallback
    module = lookup("local-attn")(heads=2, window=2, **fields).build(IMAGE).eval()
    x = torch.randn(2, *IMAGE.dims)
    with torch.no_grad(), SdpaCalls() as fused:
        without = module(x)
    with SdpaCalls() as explicit:
        with_grad = module(x)
    assert (fused.calls, explicit.calls) == (1, 0)
    assert (without - with_grad).abs().max() <= 1e-5


def test_a_window_bias_gives_the_kernels_maths():
    # With gradients, on CPU a bias keeps the explicit path; the hook values it reads must still equal SDPA's maths.
    module = lookup("local-attn")(heads=2, window=2).build(IMAGE).eval()
    q, k, v = (torch.randn(6, 2, 4, 8) for _ in range(3))
    bias = module.bias()
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=module.scale)
    assert (module.attend(q, k, v) - want).abs().max() <= 1e-5


def maps_of(record_model, other, x):
    seen = []
    with torch.no_grad(), explicit_attention(lambda m, a: seen.append(m), model=record_model):
        record_model(x), other(x)
    return seen


def test_one_model_records_its_maps_and_another_stays_fused():
    spec, shape = lookup("global-attn")(heads=2, dim_head=8), Shape.tokens(5, 16)
    a, b = spec.build(shape).eval(), spec.build(shape).eval()
    seen = maps_of(a, b, torch.randn(1, 5, 16))
    assert seen == [a]
    assert a.explicit is None and b.explicit is None  # restored on exit


def test_the_context_is_private_to_its_thread():
    module = lookup("global-attn")(heads=2, dim_head=8).build(Shape.tokens(5, 16)).eval()
    inside, other = threading.Event(), []

    def elsewhere():
        inside.wait()
        other.append(module.explicit_mode())

    thread = threading.Thread(target=elsewhere)
    thread.start()
    with explicit_attention():
        assert module.explicit_mode() is not None
        inside.set()
        thread.join()
    assert other == [None]
    assert module.explicit_mode() is None


def test_every_attention_module_shares_the_core():
    for block, fields, shape in CASES:
        assert isinstance(lookup(block)(**fields).build(shape), Attention), block
