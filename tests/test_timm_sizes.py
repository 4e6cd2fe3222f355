"""Every timm model name the zoo resolves (``vitdsl.interop.timm.names()``) is timm's size: the same parameter
count and the same default input, counted on the meta device (no weights; the sweep, ``make timm-sweep``,
compares the outputs of every one). A family added to FAMILIES is checked here with nothing to write."""
import pytest
from timm_oracle import count

import vitdsl
import vitdsl.interop.timm as vt
from vitdsl.graph import info

timm = pytest.importorskip("timm")

# These families' constructors take weight_init; skipping timm's init of meta tensors (which hold no values)
# saves seconds per large model.
SKIP_INIT = {"maxvit": "", "swin": "", "siglip": "skip", "dinov2": "skip"}
# Others draw through a function of their module, which the counts do not need (MViTv2's truncated normal takes
# seconds per model even on meta tensors).
NO_DRAW = {"mvitv2": "timm.models.mvitv2.trunc_normal_tf_", "davit": "timm.models.davit.DaVit._init_weights"}


@pytest.mark.parametrize("name", vt.names())
def test_every_name_has_timms_parameter_count_and_input_size(name, monkeypatch):
    t = vt.target(name)
    graph = vitdsl.validate(t.blueprint, t.variant, overrides=t.overrides or None)
    family = vt.family(name)
    if family in NO_DRAW:
        monkeypatch.setattr(NO_DRAW[family], lambda *args, **kwargs: None)
    init = {"weight_init": SKIP_INIT[family]} if family in SKIP_INIT else {}
    ref = timm.create_model(name, device="meta", **init)
    assert info(graph)["params"] == count(ref)
    assert graph.input.dims == tuple(ref.pretrained_cfg["input_size"])


def test_family_names_the_module_that_lists_a_name():
    assert vt.family("vit_small_patch14_reg4_dinov2") == "dinov2"
    assert vt.family("vit_base_patch16_siglip_224") == "siglip" and vt.family("vit_base_patch16_224") == "vit"
    with pytest.raises(vitdsl.VitdslError, match="no timm model 'vit_nano' in the zoo"):
        vt.family("vit_nano")
