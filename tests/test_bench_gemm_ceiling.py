"""benchmarks/gemm_ceiling.py's bookkeeping (timings are never asserted): which products one forward runs,
their FLOPs, and a replay that runs the same products."""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from gemm_ceiling import Products, flops_of, replay  # noqa: E402


def forward(x):
    y = F.linear(x, torch.ones(5, 4))  # (2, 3, 4) → (2, 3, 5): 2·6·4·5 = 240
    z = y @ torch.ones(5, 7)  # 2·(2·3)·5·7 = 420
    q = torch.ones(1, 2, 3, 4)
    return z, F.scaled_dot_product_attention(q, torch.ones(1, 2, 5, 4), torch.ones(1, 2, 5, 4))  # 4·2·3·5·4 = 480


def test_products_and_their_flops():
    for context in (torch.inference_mode, torch.no_grad):  # linear arrives whole, or as its products
        with context(), Products() as seen:
            forward(torch.ones(2, 3, 4))
        assert sum(flops_of(f, s) for f, s, _ in seen.calls) == 240 + 420 + 480, context
        again = Products()
        with context(), again:
            replay(seen.calls)()
        assert [(f, s) for f, s, _ in again.calls] == [(f, s) for f, s, _ in seen.calls]
