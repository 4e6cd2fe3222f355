"""What the checkpoint tests share: a tiny model saved, and ways to write and break checkpoint files."""
import zipfile
from pathlib import Path

import pytest

import vitdsl
from vitdsl import VitdslError
from vitdsl.checkpoint import FORMAT, FORMAT_VERSION, fingerprint

ROOT = Path(__file__).resolve().parent.parent
TINY = {"depth": 1, "dim": 32, "heads": 2, "dim_head": 16, "mlp": 32, "image_size": 32, "patch": 8, "classes": 10}
SAVE_HINT = "a checkpoint is what vitdsl.save (or 'vitdsl build --save FILE') writes"


@pytest.fixture(scope="module")
def model():
    return vitdsl.build("vit", overrides=TINY, seed=0)


@pytest.fixture
def saved(model, tmp_path):
    path = tmp_path / "m.pt"
    vitdsl.save(model, path)
    return path


def record(model, **changes) -> dict:
    """What save writes, with some entries changed; the hash recomputed unless 'sha256' is given."""
    bp, sd = changes.pop("blueprint", model.blueprint.to_dict()), changes.pop("state_dict", model.state_dict())
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "vitdsl_version": vitdsl.__version__,
            "sha256": fingerprint(bp, sd), "blueprint": bp, "state_dict": sd}
    data.update(changes)
    return data


def error_of(path) -> str:
    with pytest.raises(VitdslError) as e:
        vitdsl.load_checkpoint(path)
    return str(e.value)


def flip(path: Path, start: int, n: int = 64) -> None:
    raw = bytearray(path.read_bytes())
    raw[start:start + n] = bytes(b ^ 0xFF for b in raw[start:start + n])
    path.write_bytes(bytes(raw))


def zip_with_pickle(path: Path, data: bytes) -> None:
    """A zip archive laid out like torch.save's around a given pickle."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/version", "3\n")


def data_offset(path: Path, member_suffix: str) -> tuple[int, int]:
    """(offset in the file, size) of a zip member's stored bytes: torch.save does not compress."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    raw = path.read_bytes()
    name_len, extra_len = (int.from_bytes(raw[info.header_offset + k:info.header_offset + k + 2], "little")
                           for k in (26, 28))
    return info.header_offset + 30 + name_len + extra_len, info.file_size
