"""vitdsl verify: a blueprint against a reference, with every reference tensor re-drawn at random."""
import sys
import types

import pytest
import torch
from vit_pytorch import ViT

import vitdsl
from vitdsl.blueprint.load import load
from vitdsl.cli import main
from vitdsl.errors import VitdslError
from vitdsl.interop import maps as maps_package
from vitdsl.interop.maps import collect
from vitdsl.interop.readme import ENTRIES, find
from vitdsl.interop.verify import redraw, verify

FAQ = {"image_height": 96, "image_width": 64, "patch_height": 16, "patch_width": 32, "classes": 10, "dim": 64,
       "depth": 2, "heads": 4, "dim_head": 16, "mlp": 128, "dropout": 0.0, "emb_dropout": 0.0}
FAQ_ARGS = [a for k, v in FAQ.items() for a in ("--set", f"{k}={v}")]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_zoo_model_is_exact_against_vit_pytorch(capsys):
    code, out, err = run(capsys, "verify", "vit", *FAQ_ARGS, "--against", "vit-pytorch:ViT")
    assert code == 0, err
    assert "against vit-pytorch:vit_pytorch.vit.ViT" in out
    assert "│ parameters │ 169,802 │   169,802 │" in out
    assert "│ tensors    │      34 │        34 │" in out
    assert "Tensors: 34 exact" in out
    assert "│ transformer.layers.1.0.to_qkv.weight   │ 192×64  │ blocks.1.attn.qkv.weight  │ 192×64  │ exact  │" in out
    assert "exact: max |Δ| of the outputs" in out


def test_the_result_object():
    r = verify("vit", "vit-pytorch:ViT", overrides=FAQ)
    assert r.exact and r.reason is None
    assert (r.ours_params, r.reference_params, r.counts) == (169_802, 169_802, {"exact": 34})
    assert 0 < r.max_diff <= 1e-5  # re-drawn weights: not a trivially zero output


def test_reference_arguments_change_the_readme_example():
    r = verify("simple_vit", "vit-pytorch:SimpleViT",
               overrides={"image_size": 32, "patch": 8, "dim": 32, "depth": 1, "heads": 2, "dim_head": 16, "mlp": 64,
                          "classes": 10},
               reference_args={"image_size": 32, "patch_size": 8, "dim": 32, "depth": 1, "heads": 2, "dim_head": 16,
                               "mlp_dim": 64, "num_classes": 10})
    assert r.exact and r.ours_params == 15_434


def broken(monkeypatch, rules):
    good = collect()
    monkeypatch.setattr(maps_package, "collect", lambda: {**good, "vit_pytorch.vit.ViT": (rules, {})})


def test_a_map_that_leaves_tensors_out_exits_1(monkeypatch, capsys):
    rules, _ = collect()["vit_pytorch.vit.ViT"]
    broken(monkeypatch, [r for r in rules if r[0] != r"mlp_head\."])
    code, out, _ = run(capsys, "verify", "vit", *FAQ_ARGS, "--against", "vit-pytorch:ViT")
    assert code == 1
    assert "Tensors: 32 exact, 2 unused, 2 missing" in out
    assert "│ mlp_head.weight                        │ 10×64   │ —                         │ —       │ unused  " \
           "│ matches no rule │" in out
    assert "│ —                                      │ —       │ head.fc.weight            │ 10×64   │ missing │" in out
    assert "not exact: 2 tensor(s) of ours missing, 2 of the reference unused (max |Δ| of the outputs —)" in out


def test_a_map_that_swaps_two_layers_norms_exits_1(monkeypatch, capsys):
    """Every tensor used and every shape right: only the re-drawn values show the wrong wiring."""
    rules, _ = collect()["vit_pytorch.vit.ViT"]
    swap = [(r"transformer\.layers\.0\.0\.norm\.weight$", "blocks.1.attn.norm.weight"),
            (r"transformer\.layers\.1\.0\.norm\.weight$", "blocks.0.attn.norm.weight")]
    broken(monkeypatch, swap + rules)
    code, out, _ = run(capsys, "verify", "vit", *FAQ_ARGS, "--against", "vit-pytorch:ViT")
    assert code == 1
    assert "Tensors: 34 exact" in out
    assert "not exact: outputs differ by" in out and "(more than 1e-05)" in out


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, "verify", "vit", "--against", "pytorch:ViT")
    assert (code, err) == (2, "error: --against 'pytorch:ViT' names no reference\n  hint: use vit-pytorch:CLASS "
                              "(e.g. vit-pytorch:ViT) or timm:NAME (e.g. timm:deit3_small_patch16_224)\n")
    code, _, err = run(capsys, "verify", "vit", "--set", "classes=10", "--against", "vit-pytorch:ViT")
    assert code == 2
    assert err.startswith("error: no README arguments of vit_pytorch.vit.ViT match 'vit' with --set classes=10\n"
                          "  hint: the known ones: vit; vit --set image_height=96")
    code, _, err = run(capsys, "verify", "vit", "--against", "vit-pytorch:SimpleViT")
    assert (code, err) == (2, "error: 'vit' is not compared with vit-pytorch class 'SimpleViT'\n"
                              "  hint: use vit_pytorch.vit.ViT\n")


def test_timm_needs_the_timm_importer(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "vitdsl.interop.timm", None)  # as when it is not there
    code, _, err = run(capsys, "verify", "vit", "--against", "timm:vit_base_patch16_224")
    assert (code, err) == (2, "error: timm models need vitdsl.interop.timm, which is not installed\n"
                              "  hint: this vitdsl has no timm importer yet; --against vit-pytorch:CLASS works\n")


def test_the_timm_path_through_the_importer_contract(monkeypatch):
    """A stand-in for vitdsl.interop.timm: rules(name) and reference(name), as the importer offers them."""
    small = {"image_size": 32, "patch_size": 8, "num_classes": 10, "dim": 32, "depth": 2, "heads": 2,
             "dim_head": 16, "mlp_dim": 64}
    fake = types.SimpleNamespace(rules=lambda name: collect()["vit_pytorch.vit.ViT"],
                                 reference=lambda name: ViT(**small), import_weights=None)
    monkeypatch.setitem(sys.modules, "vitdsl.interop.timm", fake)
    ours = {"image_size": 32, "patch": 8, "classes": 10, "dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp": 64,
            "dropout": 0.0, "emb_dropout": 0.0}
    r = verify("vit", "timm:tiny_vit", overrides=ours)
    assert r.exact and r.reference == "timm:tiny_vit" and r.ours_params == 24_490
    # an importer that offers only import_weights: the rows follow its key map
    from vitdsl.interop.vit_pytorch import import_weights

    fake.rules = None
    del fake.rules
    fake.import_weights = import_weights
    r = verify("vit", "timm:tiny_vit", overrides=ours)
    assert r.exact and r.counts == {"exact": 34}


def test_redraw_changes_every_float_tensor_and_keeps_the_rest():
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.BatchNorm1d(3))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    redraw(m, seed=1)
    after = m.state_dict()
    for k, v in before.items():
        if v.is_floating_point():
            assert not torch.equal(v, after[k]), k
        else:
            assert torch.equal(v, after[k]), k
    for k in ("1.weight", "2.running_var"):  # all-positive tensors stay positive
        assert 0.5 <= after[k].min() and after[k].max() <= 1.5
    assert after["0.weight"].abs().max() <= 0.5  # ±1/√fan-in


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.blueprint}{len(e.overrides) or ''}")
def test_every_readme_entry_names_the_blueprints_reference(entry):
    assert load(entry.blueprint, entry.variant).reference == entry.cls
    assert entry.cls in collect()
    assert find(entry.blueprint, entry.cls.rpartition(".")[2], entry.variant, entry.overrides) is entry


def test_verify_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    out = capsys.readouterr().out
    assert "Exit status 0 only when exact" in " ".join(out.split())
    assert vitdsl.__version__


def test_a_missing_timm_or_what_timm_imports_is_named_in_the_hint(monkeypatch, tmp_path):
    """Where timm is installed but torchvision is not, the hint names torchvision, not timm."""
    from vitdsl.interop.timm_contract import timm_reference

    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(VitdslError) as e:
        timm_reference("vit_tiny_patch16_224")
    assert e.value.hint == "pip install timm"
    (tmp_path / "timm").mkdir()
    (tmp_path / "timm" / "__init__.py").write_text("import torchvision_not_here\n")
    monkeypatch.delitem(sys.modules, "timm")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(VitdslError) as e:
        timm_reference("vit_tiny_patch16_224")
    assert str(e.value) == ("cannot import timm: No module named 'torchvision_not_here'\n"
                            "  hint: pip install torchvision_not_here")
