import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import torchvision_stub  # noqa: E402

torchvision_stub.install()

if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    import torch

    # `make test` runs one worker per core (pytest -n 2): more torch threads than cores would slow both down
    torch.set_num_threads(1)

# `vitdsl list` keeps a cache under the user's cache folder: the tests' own, so that no run reads another's
os.environ.setdefault("VITDSL_CACHE_DIR", tempfile.mkdtemp(prefix="vitdsl-test-cache-"))

# fixtures shared without importing them into each module: the checkpoint tests' (a tiny saved model) and
# the ONNX checks'
pytest_plugins = ("checkpoint_files", "onnx_runtime")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def write(tmp_path):
    """Write a blueprint file; returns its path."""

    def _write(text: str, name: str = "bp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
