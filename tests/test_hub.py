"""Hub-style folders: save_pretrained writes model.safetensors and blueprint.yaml, from_pretrained reads them
back from a folder or a Hugging Face Hub repository id (huggingface_hub stubbed: no network here)."""
import subprocess
import sys

import pytest
import torch
from checkpoint_files import TINY

import vitdsl
from vitdsl import VitdslError


@pytest.fixture(scope="module")
def model():
    return vitdsl.build("vit", overrides=TINY, seed=0).eval()


@pytest.fixture
def folder(model, tmp_path):
    return vitdsl.save_pretrained(model, tmp_path / "hub" / "tiny-vit")


def same(a, b) -> bool:
    x = torch.randn(2, *a.input_shape)
    return torch.equal(a.eval()(x), b.eval()(x))


def test_a_folder_round_trips(model, folder):
    assert sorted(p.name for p in folder.iterdir()) == ["blueprint.yaml", "model.safetensors"]
    assert vitdsl.load(str(folder / "blueprint.yaml")).to_dict() == model.blueprint.to_dict()
    assert same(vitdsl.from_pretrained(folder), model)


def test_an_edited_blueprint_yaml_is_refused(folder):
    path = folder / "blueprint.yaml"
    path.write_text(path.read_text().replace("classes: 10", "classes: 11"))
    with pytest.raises(VitdslError) as e:
        vitdsl.from_pretrained(folder)
    assert e.value.message == f"'{path}' is not the blueprint model.safetensors carries (it was edited after saving)"


def test_what_is_not_a_model_folder(folder, tmp_path):
    (folder / "model.safetensors").unlink()
    with pytest.raises(VitdslError, match=f"folder '{folder}' holds no model.safetensors"):
        vitdsl.from_pretrained(folder)
    with pytest.raises(VitdslError) as e:
        vitdsl.from_pretrained(tmp_path / "missing" / "deeper" / "x")
    assert e.value.message.endswith("is neither a folder save_pretrained wrote nor a Hugging Face Hub repository "
                                    "id (owner/name)")


def test_a_repository_id_downloads_both_files(model, folder, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    asked = []

    def download(repo, filename, revision=None):
        asked.append((repo, filename, revision))
        return str(folder / filename)

    monkeypatch.setattr(hub, "hf_hub_download", download)
    assert same(vitdsl.from_pretrained("someone/tiny-vit", revision="v1"), model)
    assert asked == [("someone/tiny-vit", "model.safetensors", "v1"), ("someone/tiny-vit", "blueprint.yaml", "v1")]


def test_without_huggingface_hub_or_offline_the_error_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(VitdslError) as e:
        vitdsl.from_pretrained("someone/tiny-vit")
    assert e.value.message == "'someone/tiny-vit' needs huggingface_hub, which is not installed"
    code = ("import vitdsl\ntry:\n    vitdsl.from_pretrained('someone/tiny-vit')\nexcept vitdsl.VitdslError as e:\n"
            "    print(e.message)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert run.stdout.startswith("cannot fetch 'someone/tiny-vit': "), run.stdout + run.stderr
