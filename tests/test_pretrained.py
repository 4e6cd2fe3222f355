"""Pretrained weight files (safetensors, torch files; containers; hostile files) and the transplant planner
on a modified blueprint: every tensor planned, nothing skipped silently."""
import json
import os
import pickle
import struct
import sys

import pytest
import torch
from vit_pytorch import ViT

import vitdsl
from vitdsl.cli import main
from vitdsl.interop.maps import collect
from vitdsl.interop.pretrained import apply, load_pretrained, plan, read

REF = {"image_size": 32, "patch_size": 8, "num_classes": 10, "dim": 32, "depth": 2, "heads": 2, "dim_head": 16,
       "mlp_dim": 64}
OURS = {"image_size": 32, "patch": 8, "classes": 10, "dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp": 64,
        "dropout": 0.0, "emb_dropout": 0.0}
KEYS = collect()["vit_pytorch.vit.ViT"]


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return ViT(**REF).eval()


@pytest.fixture
def pth(reference, tmp_path):
    path = tmp_path / "vit.pth"
    torch.save(reference.state_dict(), path)
    return path


def model(**changes):
    return vitdsl.build("vit", overrides={**OURS, **changes}, seed=1).eval()


def test_a_pth_file_loads_strictly_and_gives_the_reference_outputs(reference, pth):
    m = model()
    p = load_pretrained(m, pth, KEYS)
    assert p.strict and p.summary() == "34 exact"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m(x), reference(x), atol=1e-6)


def test_a_safetensors_file_is_read_without_the_package(reference, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    path = tmp_path / "model.safetensors"
    sd = {**reference.state_dict(), "extra.half": torch.randn(3, 2).half(), "extra.long": torch.arange(4)}
    safetensors.save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    got = read(path)
    assert got.notes == [] and list(got.state) == list(safetensors.load_file(str(path)))
    for k, v in sd.items():
        assert got.state[k].dtype == v.dtype and torch.equal(got.state[k], v), k
    del sd["extra.half"], sd["extra.long"]
    safetensors.save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    m = model()
    load_pretrained(m, path, KEYS)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m(x), reference(x), atol=1e-6)


def test_containers_are_unwrapped_with_a_note_each(reference, tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {f"module.{k}": v for k, v in reference.state_dict().items()}, "epoch": 300}, path)
    got = read(path)
    assert got.notes == ["using the file's 'model' entry (also there: epoch)",
                         "removed the 'module.' prefix (DataParallel) from every key"]
    assert list(got.state) == list(reference.state_dict())
    torch.save({"model": reference.state_dict(), "state_dict": reference.state_dict()}, path)
    with pytest.raises(vitdsl.VitdslError) as e:
        read(path)
    assert str(e.value) == (f"weights file '{path}' holds several state_dicts (state_dict, model)\n"
                            "  hint: save the state_dict alone: torch.save(model.state_dict(), FILE)")
    torch.save({"weights": [1, 2]}, path)
    with pytest.raises(vitdsl.VitdslError, match=r"holds no state_dict among its entries \(weights\)"):
        read(path)


def test_image_size_resamples_the_position_table_as_timm_does(reference, pth):
    from timm.layers import resample_abs_pos_embed

    m = model(image_size=48)
    p = plan(m, read(pth).state, KEYS)
    assert p.summary() == "33 exact, 1 resampled"
    step = next(s for s in p.steps if s.action == "resampled")
    assert (step.ours, step.reference, step.our_shape, step.reference_shape) == \
           ("pos_embed.pos", "pos_embedding", (37, 32), (17, 32))
    assert step.note == "grid 4×4 → 6×6 (bicubic), 1 special-token row(s) kept"
    apply(m, p)
    pos = reference.state_dict()["pos_embedding"].reshape(1, 17, 32)
    expected = resample_abs_pos_embed(pos, [6, 6], num_prefix_tokens=1)[0]
    assert torch.allclose(m.pos_embed.pos, expected, atol=1e-6)
    assert torch.equal(m.pos_embed.pos[0], pos[0, 0])  # the cls row kept as it is
    sd = reference.state_dict()
    for s in p.steps:
        if s.action == "exact":
            assert torch.equal(m.state_dict()[s.ours], sd[s.reference].reshape(s.our_shape)), s.ours
    assert m(torch.randn(1, 3, 48, 48)).shape == (1, 10)


def test_other_classes_reinitialise_the_head_and_keep_the_features(reference, pth):
    m = model(classes=5)
    head = {k: v.clone() for k, v in m.head.state_dict().items()}
    p = load_pretrained(m, pth, KEYS, plan=True, show=False)
    assert p.summary() == "32 exact, 2 re-initialised"
    odd = [(s.action, s.ours, s.reference, s.our_shape, s.reference_shape, s.note) for s in p.steps
           if s.action != "exact"]
    assert odd == [("re-initialised", "head.fc.weight", "mlp_head.weight", (5, 32), (10, 32),
                    "the file's tensor is dropped: (10, 32) does not fit (5, 32)"),
                   ("re-initialised", "head.fc.bias", "mlp_head.bias", (5,), (10,),
                    "the file's tensor is dropped: (10,) does not fit (5,)")]
    for k, v in m.head.state_dict().items():
        assert torch.equal(v, head[k])  # the model's own initialisation
    m.head.fc, ref = torch.nn.Identity(), ViT(**REF).eval()
    ref.load_state_dict(reference.state_dict())
    ref.mlp_head = torch.nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m(x), ref(x), atol=1e-6)  # everything before the head is the file's


def test_other_depths_add_or_drop_whole_blocks(reference, pth):
    state = read(pth).state
    deeper = model(depth=3)
    fresh = {k: v.clone() for k, v in deeper.state_dict().items()}
    p = plan(deeper, state, KEYS)
    assert p.summary() == "34 exact, 11 re-initialised"
    assert [s.ours for s in p.steps if s.action == "re-initialised"] == [
        k for k in deeper.state_dict() if k.startswith("blocks.2.")]
    assert all(s.reference is None and s.note == "not in the file" for s in p.steps if s.action == "re-initialised")
    apply(deeper, p)
    for k, v in deeper.state_dict().items():
        if k.startswith("blocks.2."):
            assert torch.equal(v, fresh[k])
    shallower = model(depth=1)
    p = plan(shallower, state, KEYS)
    assert p.summary() == "23 exact, 11 dropped"
    dropped = [(s.reference, s.note) for s in p.steps if s.action == "dropped"]
    assert dropped[0] == ("transformer.layers.1.0.norm.weight", "the model has no 'blocks.1.attn.norm.weight'")
    assert [r for r, _ in dropped] == [k for k in state if k.startswith("transformer.layers.1.")]
    apply(shallower, p)
    one = ViT(**{**REF, "depth": 1}).eval()  # the file's first layer, head and embeddings, in vit-pytorch
    one.load_state_dict({k: v for k, v in state.items() if not k.startswith("transformer.layers.1.")})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(shallower(x), one(x), atol=1e-6)


def test_without_the_planner_a_modified_model_is_refused(pth):
    with pytest.raises(vitdsl.VitdslError) as e:
        load_pretrained(model(classes=5), pth, KEYS)
    assert str(e.value).startswith(f"'{pth}' does not fill the model exactly (32 exact, 2 re-initialised): "
                                   "re-initialised head.fc.weight; re-initialised head.fc.bias\n  hint: for a modified "
                                   "blueprint")


def test_a_file_of_another_model_is_refused(pth):
    with pytest.raises(vitdsl.VitdslError, match="none of the 34 tensors of the file fits this model"):
        plan(model(dim=64, heads=4, patch=16, mlp=128, classes=7), read(pth).state, KEYS)
    with pytest.raises(vitdsl.VitdslError, match=r"2 tensor\(s\) of the file match no rule of the key map: a, b"):
        plan(model(), {"a": torch.zeros(1), "b": torch.zeros(1)}, KEYS[0][:1])


def test_build_with_weights_on_the_command_line(pth, capsys):
    args = [f"{k}={v}" for k, v in {**OURS, "image_size": 48, "classes": 5}.items()]
    code = main(["build", "vit", *[a for s in args for a in ("--set", s)], "--weights", str(pth)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"weights: {pth} — keys: vit-pytorch (vit_pytorch.vit.ViT), chosen: it places 34 tensors (vitdsl (the " \
           "blueprint's own) 0, timm 1)" in out
    assert "Weights plan: 31 exact, 1 resampled, 2 re-initialised" in out
    assert "│ resampled      │ pos_embed.pos" in out
    assert "loaded: 31 exact, 1 resampled, 2 re-initialised" in out
    assert "Total params:" in out


def test_a_state_dict_of_our_own_keys(tmp_path, capsys):
    src = model()
    torch.save(src.state_dict(), tmp_path / "own.pth")
    code = main(["build", "vit", *[a for k, v in OURS.items() for a in ("--set", f"{k}={v}")], "--set", "depth=3",
                 "--weights", str(tmp_path / "own.pth")])
    out = capsys.readouterr().out
    assert code == 0
    assert "keys: vitdsl (the blueprint's own), chosen: it places 34 tensors (vit-pytorch (vit_pytorch.vit.ViT) " \
           "0, timm 4)" in out
    assert "Weights plan: 34 exact, 11 re-initialised" in out


# hostile and damaged files: one clear error, nothing unpickled, nothing allocated beyond the file


def safetensors_file(path, header: dict, data: bytes = b"", length: int | None = None):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


@pytest.mark.parametrize("header,data,length,message", [
    ({}, b"", 1 << 40, "declares a header of 1,099,511,627,776 bytes, beyond the file or the format's 100 MiB"),
    ({"w": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 4 << 30]}}, b"\0" * 8, None,
     "gives tensor 'w' the byte range [0, 4294967296], outside its 8 data bytes"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None,
     "gives tensor 'w' 8 bytes for 3 values of 4 byte(s)"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None,
     "has tensors 'a' and 'b' over the same bytes"),
    ({"w": {"dtype": "PICKLE", "shape": [1], "data_offsets": [0, 1]}}, b"\0", None,
     "gives tensor 'w' the dtype 'PICKLE', which vitdsl does not read (it reads F64, F32, F16, BF16, I64, I32, "
     "I16, I8, U8, BOOL)"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, None,
     "gives tensor 'w' the shape [-1], not a list of sizes"),
])
def test_hostile_safetensors_files_are_refused_before_reading_data(tmp_path, header, data, length, message):
    path = safetensors_file(tmp_path / "h.safetensors", header, data, length)
    with pytest.raises(vitdsl.VitdslError) as e:
        read(path)
    assert str(e.value) == (f"safetensors file '{path}' {message}\n"
                            "  hint: it is damaged or not a safetensors file; download it again")


def test_a_header_that_is_not_json(tmp_path):
    path = tmp_path / "h.safetensors"
    path.write_bytes(struct.pack("<Q", 3) + b"\xff{}")
    with pytest.raises(vitdsl.VitdslError, match="has a header that is not JSON"):
        read(path)


def test_torch_files_that_hold_code_are_refused(tmp_path):
    (tmp_path / "p.pth").write_bytes(pickle.dumps({"cmd": os.system}))
    with pytest.raises(vitdsl.VitdslError) as e:
        read(tmp_path / "p.pth")
    assert str(e.value) == (f"weights file '{tmp_path / 'p.pth'}' is a bare pickle, not a weights file: torch.save "
                            "has written zip archives since torch 1.6\n  hint: a weights file is a .safetensors "
                            "file, or a state_dict saved with torch.save (.pth, .bin)")

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"w": torch.zeros(1), "x": Payload()}, tmp_path / "code.bin")
    with pytest.raises(vitdsl.VitdslError, match="holds Python objects other than tensors and plain data, which "
                                                 r"vitdsl refuses to unpickle \(they could run code\)"):
        read(tmp_path / "code.bin")
    (tmp_path / "t.txt").write_text("weights")
    with pytest.raises(vitdsl.VitdslError, match="is neither a .safetensors file nor one torch.save wrote"):
        read(tmp_path / "t.txt")


def test_a_pickle_that_unfolds_without_end_is_refused(tmp_path):
    from checkpoint_files import zip_with_pickle

    deep = None
    for _ in range(300):
        deep = [deep]
    zip_with_pickle(tmp_path / "deep.pth", pickle.dumps(deep, protocol=2))
    with pytest.raises(vitdsl.VitdslError) as e:
        read(tmp_path / "deep.pth")
    assert str(e.value).startswith(f"weights file '{tmp_path / 'deep.pth'}' is not a weights file: its pickle is "
                                   "hostile (it nests more than 200 levels deep)")


def test_hf_hub_without_the_package_or_offline(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(vitdsl.VitdslError) as e:
        read("hf-hub:timm/vit_base_patch16_224.augreg_in21k")
    assert str(e.value) == ("'hf-hub:timm/vit_base_patch16_224.augreg_in21k' needs huggingface_hub, which is not "
                            "installed\n  hint: pip install huggingface_hub, or download the file and pass its path")


def test_hf_hub_offline(monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(vitdsl.VitdslError, match=r"^cannot fetch 'hf-hub:timm/vit_base_patch16_224\.augreg_in21k'"):
        read("hf-hub:timm/vit_base_patch16_224.augreg_in21k")


@pytest.mark.parametrize("old,new", [(3, 4), (7, 12), (7, 5)])
def test_relative_tables_are_resized_as_timm_resizes_them(old, new):
    """A window grown (or shrunk) from ``old`` to ``new``: the flat ((2w−1)², heads) table and the heads-first
    (heads, 2w−1, 2w−1) one give timm's ``resize_rel_pos_bias_table`` values, heads kept apart."""
    from timm.layers.pos_embed_rel import resize_rel_pos_bias_table

    from vitdsl.interop.pretrained import _resample

    a, b = 2 * old - 1, 2 * new - 1
    flat, heads_first = torch.randn(a * a, 3), torch.randn(3, a, a)
    out, how = _resample(torch.nn.Module(), "blocks.0.attn.rel_pos_bias.weight", flat, torch.zeros(b * b, 3))
    assert how == f"relative positions interpolated, {a}×{a} → {b}×{b}"
    assert (out - resize_rel_pos_bias_table(flat, (new, new), (b * b, 3))).abs().max() < 1e-6
    out, how = _resample(torch.nn.Module(), "blocks.0.attn.rel_pos_bias.weight", heads_first, torch.zeros(3, b, b))
    assert (out - resize_rel_pos_bias_table(heads_first, (new, new), (3, b, b))).abs().max() < 1e-6
    assert torch.equal(out[:, b // 2, b // 2], heads_first[:, a // 2, a // 2])  # offset 0 keeps its value
    with_cls = torch.randn(a * a + 3, 3)  # BEiT's: three cls rows after the grid, kept as they are
    out, how = _resample(torch.nn.Module(), "blocks.0.attn.rel_pos_bias.weight", with_cls, torch.zeros(b * b + 3, 3))
    assert how == f"relative positions interpolated, {a}×{a} → {b}×{b}, 3 cls rows kept"
    assert (out - resize_rel_pos_bias_table(with_cls, (new, new), (b * b + 3, 3))).abs().max() < 1e-6


def test_a_strict_transplant_refuses_a_modified_blueprint():
    with pytest.raises(vitdsl.VitdslError, match=r"pos_embed.pos \(17, 32\) → \(37, 32\)"):
        vitdsl.transplant(model(), "vit", overrides={**OURS, "depth": 1, "image_size": 48})


def test_transplant_with_a_plan(capsys):
    src = model()
    target, left = vitdsl.transplant(src, "vit", overrides={**OURS, "depth": 1, "image_size": 48}, plan=True)
    out = capsys.readouterr().out
    assert "Weights plan: 22 exact, 1 resampled, 11 dropped" in out
    assert left == [k for k in src.state_dict() if k.startswith("blocks.1.")]
    assert torch.equal(target.state_dict()["blocks.0.ff.fc1.weight"], src.state_dict()["blocks.0.ff.fc1.weight"])


def test_keys_of_a_timm_model_through_the_importer_contract(pth, monkeypatch, capsys):
    """A stand-in for vitdsl.interop.timm whose rules(name) are the vit-pytorch map."""
    import types

    monkeypatch.setitem(sys.modules, "vitdsl.interop.timm", types.SimpleNamespace(rules=lambda name: KEYS))
    code = main(["build", "vit", *[a for k, v in OURS.items() for a in ("--set", f"{k}={v}")], "--weights", str(pth),
                 "--keys", "timm:tiny_vit"])
    out = capsys.readouterr().out
    assert code == 0
    assert "keys: timm (tiny_vit)" in out and "Weights plan: 34 exact" in out
