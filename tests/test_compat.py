"""The vit-pytorch overlay: written once (vitdsl/blocks/compat.py), applied by the default variant of the zoo
files that set it, never by a paper variant unless the variant asks for it."""
import pytest

import vitdsl
from vitdsl.blocks.compat import OVERLAYS, applies
from vitdsl.blueprint.load import load, zoo_names
from vitdsl.errors import VitdslError
from vitdsl.graph.build import info

VARIANTS = [(name, v) for name in zoo_names(examples=True) for v in load(name).variants]
# a paper whose own code agrees with vit-pytorch on a field: the blueprint writes the value, for both (T2T-ViT's
# attention has qkv_bias=False; the shifted patch tokenization of "ViT for Small-Size Datasets" normalises the
# patch vector before its projection; MobileViT's code, and timm, keep PyTorch's LayerNorm eps; Twins normalises its
# patch embedding with PyTorch's LayerNorm, eps 1e-5; MaxViT's TensorFlow code, and timm's maxvit_*_tf, normalise
# with LayerNorm eps 1e-5 too; so does PVT v2's code, and timm, after each overlapping patch embedding; so does Swin,
# everywhere, and its patch embedding and merging normalise, after and before their projections; timm's SBB
# vit_mediumd_patch16_rope_reg1_gap_256 has no qkv bias; DaViT normalises as Swin does)
PAPERS_AGREE = {
    ("t2t_vit", "global-attn", "qkv_bias"),
    ("small_data_vit", "patchify", "pre_norm"),
    *(("mobilevit", block, "norm_eps") for block in ("local-attn", "mlp", "norm")),
    *((twins, "patchify", field) for twins in ("twins_svt", "twins_pcpvt") for field in ("post_norm", "norm_eps")),
    *(("maxvit", block, "norm_eps") for block in ("local-attn", "mlp", "head")),
    ("pvt_v2", "conv-stem", "norm_eps"),
    ("rope_vit", "global-attn", "qkv_bias"),
    *(("swin", block, "norm_eps") for block in ("patchify", "local-attn", "mlp", "norm")),
    *(("swin", "patchify", field) for field in ("pre_norm", "post_norm")),
    # the hybrids keep their sources' values: PVT v2's stem eps, Swin's norms and eps
    ("pvt_v2_map", "conv-stem", "norm_eps"),
    *(("swin_rope_swiglu", block, "norm_eps") for block in ("patchify", "local-attn", "mlp", "norm")),
    *(("swin_rope_swiglu", "patchify", field) for field in ("pre_norm", "post_norm")),
    *(("davit", block, "norm_eps") for block in ("conv-stem", "norm", "local-attn", "channel-attn", "mlp")),
}


def quirks(design) -> list[str]:
    """Where a block of ``design`` holds a value the vit-pytorch overlay would give it."""
    found = []
    for node in design.nodes:
        block = type(node.spec).block
        for rule in OVERLAYS["vit-pytorch"]:
            written = node.spec.model_dump()
            if not applies(rule, block) or rule.when is not None and not rule.when(written, design.blueprint.reference):
                continue
            for field, value in rule.defaults.items():
                if getattr(node.spec, field) == value and (design.blueprint.name, block, field) not in PAPERS_AGREE:
                    found.append(f"{node.path}: {field}={value!r}")
    return found


@pytest.mark.parametrize("name,variant", VARIANTS, ids=[f"{n}[{v}]" for n, v in VARIANTS])
def test_no_paper_variant_carries_a_quirk(name, variant):
    bp = load(name)
    opted_in = bp.variants[variant].get("compat") == "vit-pytorch"
    design = load(name, variant).resolve()
    assert design.blueprint.compat == ("vit-pytorch" if opted_in else None)
    if not opted_in:
        assert quirks(design) == []


def test_the_zoo_defaults_apply_the_overlay():
    """Every zoo file that reproduces a vit-pytorch class (its `reference`) does so by default, so it selects the
    overlay; the files of papers vit-pytorch has no class for (BEiT, timm's distilled DeiT, DaViT, DeiT III, DINOv2,
    EVA-02, MViTv2, PVT v2, RoPE-ViT, SigLIP, Swin, Twins-PCPVT) select none."""
    assert [n for n in zoo_names() if (load(n).compat == "vit-pytorch") != (load(n).reference is not None)] == []
    assert [n for n in zoo_names() if load(n).reference is None] == ["beit", "davit", "deit", "deit3", "dinov2",
                                                                          "eva02", "mvitv2", "pvt_v2", "rope_vit",
                                                                          "siglip", "swin", "twins_pcpvt"]
    eps = "norm_eps=1e-05"  # every norm of vit-pytorch keeps PyTorch's LayerNorm eps
    assert quirks(load("vit").resolve()) == [
        "patchify: pre_norm='layer'", "patchify: post_norm='layer'", f"patchify: {eps}", "tokens: init_std=1.0",
        "pos_embed: init_std=1.0",
        *(f"blocks.{i}.{f}" for i in range(6) for f in (f"attn: {eps}", "attn: qkv_bias=False",
                                                         "attn: project_out='auto'", f"ff: {eps}")),
        f"norm: {eps}", f"head: {eps}"]


def test_the_vit_sizes_are_timms():
    """Clean, ViT-B/L/H are timm's vit_{base,large,huge}_patch{16,16,14}_224 (a qkv bias, a plain patch
    projection; timm's huge comes without its 1000-class head, 1,281,000 fewer). With the overlay, the
    vit-pytorch class at those sizes (no qkv bias, LayerNorm → Linear → LayerNorm): 3·dim per layer fewer
    and 2·(patch_dim + dim) more."""
    def params(variant, compat=None):
        return info(vitdsl.validate("vit", variant, compat=compat))["params"]

    assert [params(v) for v in ("base", "large", "huge")] == [86_567_656, 304_326_632, 632_045_800]
    for v, depth, dim, patch_dim in (("base", 12, 768, 768), ("large", 24, 1024, 768), ("huge", 32, 1280, 588)):
        assert params(v, "vit-pytorch") == params(v) - depth * 3 * dim + 2 * (patch_dim + dim)


def test_compat_is_chosen_by_the_caller_and_shown():
    assert vitdsl.load("vit").compat == "vit-pytorch"
    assert vitdsl.load("vit", "base").compat is None
    assert vitdsl.load("vit", compat="none").compat is None
    assert vitdsl.load("vit", "base", compat="vit-pytorch").compat == "vit-pytorch"
    assert "(compat: vit-pytorch)" in str(vitdsl.summary("vit")).splitlines()[0]
    assert "compat" not in str(vitdsl.summary("vit", "base")).splitlines()[0]
    assert vitdsl.summary("vit").to_dict()["compat"] == "vit-pytorch"
    with pytest.raises(VitdslError) as e:
        vitdsl.load("vit", compat="vit_pytorch")
    assert str(e.value) == ("unknown compat overlay 'vit_pytorch'\n"
                            "  hint: did you mean 'vit-pytorch'? (overlays: none, vit-pytorch)")


TINY = """name: t
input: {image: [3, 32, 32]}
params: {dim: 32}
variants:
  paper: {dim: 64}
  ported: {compat: vit-pytorch, dim: 64}
layers:
  - patchify: {patch: 8, dim: $dim}
  - pos-embed: {kind: learned, init_std: 0.5}
  - global-attn: {heads: 2, project_out: always}
  - mlp: {out_dropout: "${compat == 'none'}"}
"""


def test_written_fields_win_and_variants_choose(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("compat: vit-pytorch\n" + TINY)

    def specs(variant=None):
        d = vitdsl.load(path, variant).resolve()
        return {type(n.spec).block: n.spec for n in d.nodes}

    default, paper, ported = specs(), specs("paper"), specs("ported")
    assert (default["patchify"].pre_norm, default["pos-embed"].init_std, default["global-attn"].qkv_bias,
            default["global-attn"].project_out, default["mlp"].out_dropout) == ("layer", 0.5, False, "always", False)
    assert (paper["patchify"].pre_norm, paper["global-attn"].qkv_bias, paper["mlp"].out_dropout) == \
        ("none", True, True)
    assert ported["patchify"].post_norm == "layer" and ported["global-attn"].qkv_bias is False


def test_round_trip(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("compat: vit-pytorch\n" + TINY)
    bp = vitdsl.load(path)
    again = vitdsl.loads(bp.dump())
    assert again == bp and again.compat == "vit-pytorch"
    assert again.variants["ported"]["compat"] == "vit-pytorch"
    chosen = vitdsl.load(path, "paper")  # a variant chosen: its own overlay (none) travels with it
    assert "compat" not in chosen.to_dict() and vitdsl.loads(chosen.dump()).compat is None


@pytest.mark.parametrize("where,text,message,line", [
    ("top", "compat: vitpytorch\n", "unknown compat overlay 'vitpytorch'", 1),
    ("variant", "", "unknown compat overlay 'timm'", 6),
])
def test_an_unknown_overlay_is_located(tmp_path, where, text, message, line):
    path = tmp_path / "t.yaml"
    path.write_text(text + (TINY.replace("ported: {compat: vit-pytorch", "ported: {compat: timm")
                            if where == "variant" else TINY))
    with pytest.raises(VitdslError) as e:
        vitdsl.load(path)
    assert e.value.message == message and e.value.location.line == line
    assert "overlays: none, vit-pytorch" in e.value.hint


def test_objectives_keep_their_encoders_overlay():
    design = vitdsl.load("objectives/mae").resolve()
    assert design.encoder.design.blueprint.compat == "vit-pytorch"


def test_the_command_line_chooses_the_overlay(capsys):
    import json

    from vitdsl.cli import main

    assert main(["summary", "vit", "-v", "base", "--compat", "vit-pytorch", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["compat"], data["total_params"]) == ("vit-pytorch", 86_543_080)
    assert main(["summary", "vit", "--compat", "none", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["compat"], data["total_params"]) == (None, 54_630_376 + 6 * 3 * 1024 - 2 * (3072 + 1024))
    assert main(["validate", "vit", "--compat", "timm"]) == 2
    assert capsys.readouterr().err.strip() == ("error: unknown compat overlay 'timm'\n"
                                               "  hint: overlays: none, vit-pytorch")


def test_every_block_with_a_qkv_bias_drops_it_under_vit_pytorch():
    """vit-pytorch has no query/key/value bias anywhere: an attention block added later must join the rule."""
    from vitdsl.blocks.base import REGISTRY
    from vitdsl.blocks.compat import defaults

    biased = sorted(name for name, cls in REGISTRY.items()
                    if "qkv_bias" in cls.model_fields and cls.model_fields["qkv_bias"].default)
    assert len(biased) == 12
    assert [name for name in biased if defaults("vit-pytorch", name, {}).get("qkv_bias") is not False] == []


def test_every_block_with_a_norm_eps_keeps_pytorchs_under_vit_pytorch():
    """One rule for every block with a norm_eps field (a block added later joins it); the papers' 1e-6 without
    the overlay, in the modules too."""
    from torch import nn

    from vitdsl.blocks.base import REGISTRY
    from vitdsl.blocks.compat import defaults

    with_eps = sorted(name for name, cls in REGISTRY.items() if "norm_eps" in cls.model_fields)
    assert len(with_eps) == 21 and {"patchify", "norm", "head", "token-merge", "attn-pool", "mlp",
                                    "conv-stem", "mbconv"} <= set(with_eps)
    assert [name for name in with_eps if defaults("vit-pytorch", name, {}).get("norm_eps") != 1e-5] == []
    assert "norm_eps" not in defaults("vit-pytorch", "pool", {})

    def eps(compat):
        model = vitdsl.build("vit", "base", compat=compat, device="meta")
        return {m.eps for m in model.modules() if isinstance(m, nn.LayerNorm)}

    assert (eps(None), eps("vit-pytorch")) == ({1e-6}, {1e-5})
    from vitdsl.blocks.base import lookup
    from vitdsl.blocks.shape import Shape

    def norm(**fields):
        return lookup("norm")(**fields).build(Shape.tokens(4, 8))

    assert (norm(type="rms").eps, norm(type="batch").eps, norm(type="layer", norm_eps=1e-3).eps) == (1e-6, 1e-5, 1e-3)


def test_mean_pooling_leaves_the_class_token_out_except_in_the_overlay():
    """The papers' (and timm's) mean pool averages the patch tokens; vit-pytorch's averages its class token in."""
    bp = vitdsl.loads("name: t\ncompat: vit-pytorch\ninput: {image: [3, 16, 16]}\nlayers:\n"
                      "  - patchify: {patch: 4, dim: 16}\n  - tokens: 1\n  - pool: mean\n")
    quirk, paper = (next(n.spec for n, _, _ in vitdsl.validate(bp, compat=c) if n.path == "pool")
                    for c in (None, "none"))
    assert (quirk.over, paper.over) == ("all", "patches")
    x = vitdsl.validate(bp).shape("tokens")
    assert (quirk.pattern(x), paper.pattern(x)) == ("mean", "mean of patches")
