"""Layer names that cannot become module names.

A layer's name is the attribute its module gets in the compiled ``nn.Module`` (``model.stem``), and each
nesting level is an ``nn.ModuleDict``. A name PyTorch or the compiled ``Network`` already uses
(``training``, ``forward``, ``keys``, ``steps`` ...) would shadow it or fail inside ``add_module``, so
``validate`` refuses it, with the blueprint line, before torch is imported. The sets are written out
because validation never imports torch; ``tests/test_names.py`` checks them against the torch installed.
"""
from __future__ import annotations

# nn.Module's public attributes (class and instance), torch 2.2 to 2.13
MODULE = frozenset("""
T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double dump_patches
eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu load_state_dict
modules mtia named_buffers named_children named_modules named_parameters parameters register_backward_hook
register_buffer register_forward_hook register_forward_pre_hook register_full_backward_hook
register_full_backward_pre_hook register_load_state_dict_post_hook register_load_state_dict_pre_hook
register_module register_parameter register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
set_extra_state set_submodule share_memory state_dict to to_empty train training type xpu zero_grad
""".split())
# what nn.ModuleDict adds (every nesting level of a compiled model is one)
MODULE_DICT = frozenset("clear items keys pop update values".split())
# what the compiled Network adds (vitdsl.graph.network)
NETWORK = frozenset("""
block blueprint chain complete graph input_shape layer_drops out_slots output_shape output_shapes paths run
segment segments skip_unread_tokens steps
classifier_layout default_cfg feature_info feature_paths features_only forward_features forward_head
forward_intermediates get_classifier grad_checkpointing group_matcher head_hidden_size name_source
no_weight_decay num_classes num_features pretrained_cfg reset_classifier set_grad_checkpointing timm_names
""".split())  # the second part: timm's model API (vitdsl.graph.timm_api)
RESERVED = MODULE | MODULE_DICT | NETWORK


def reserved_reason(name: str) -> str | None:
    """Why ``name`` cannot name a layer, or None when it can."""
    if name in RESERVED:
        owner = "the compiled model" if name in NETWORK else "nn.ModuleDict" if name in MODULE_DICT else "nn.Module"
        return f"'{name}' is an attribute of {owner}, so no layer can be called that"
    return None
