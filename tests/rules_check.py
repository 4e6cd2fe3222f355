"""The one check that a block's pure-Python rules (shape, parameters, FLOPs — what `vitdsl validate` and the
summary report) agree with its real module, shared by tests/test_rules.py (every zoo variant) and the tests of
options no named variant reaches."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from vitdsl.blocks.modules.attention import explicit_attention
from vitdsl.blocks.modules.padded import gives_extras


def assert_block_agrees(spec, *inputs, module: torch.nn.Module | None = None, batch: int = 1, where: str = "",
                        output=None):
    """``spec``'s rules for ``inputs`` (Shapes) equal its module's: the module built alone on the meta device
    (no weights allocated) unless ``module`` is given, which then runs on random tensors of ``batch`` samples.
    Groups fold into the batch, so the FLOPs counted are ``batch`` times the rules' per-sample total. ``output``:
    the shape the graph gave the node (its own ``infer`` by default)."""
    where = where or spec.block
    if module is None:
        with torch.device("meta"):
            module = spec.build(*inputs)
        args = [torch.empty(s.batched(batch), device="meta") for s in inputs]
    else:
        args = [torch.randn(s.batched(batch)) for s in inputs]
    module.eval()
    # explicit attention: the fused kernel's FLOPs are counted differently, the rules count the textbook ones
    with torch.no_grad(), explicit_attention(), FlopCounterMode(display=False) as counter:
        out = module(*args)
    if gives_extras(module):  # (tokens, extras): the rules describe the tokens
        out = out[0]
    assert tuple(out.shape) == tuple((output or spec.infer(*inputs)).batched(batch)), where
    assert sum(p.numel() for p in module.parameters()) == spec.count_params(*inputs), where
    assert counter.get_total_flops() == batch * spec.total_flops(*inputs), where


def assert_graph_agrees(graph, model: torch.nn.Module | None = None, batch: int = 1):
    """Every node of a validated ``graph`` agrees with its module: built alone on meta, or ``model``'s own
    block (real tensors). A spec seen before on the same inputs is checked once."""
    checked = set()
    for node, inputs, output in graph:
        key = (repr(node.spec), tuple(inputs))
        if key in checked:
            continue
        checked.add(key)
        module = None if model is None else model.block(node.path)
        assert_block_agrees(node.spec, *inputs, module=module, batch=batch, where=f"{node.path} ({node.spec.block})",
                            output=output)
