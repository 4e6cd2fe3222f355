"""What pip reads: the license file the metadata names, and the runtime dependencies (the brief's six, plus
numpy, which torch imports to convert tensors and warns "Failed to initialize NumPy" at every import without)."""
import re
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_license_file_exists_and_is_the_declared_license():
    assert PROJECT["license"] == "MIT"
    for name in PROJECT["license-files"]:
        assert (ROOT / name).read_text().startswith("MIT License\n")


def test_runtime_dependencies_are_the_declared_ones():
    names = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0] for d in PROJECT["dependencies"]}
    assert names == {"torch", "einops", "pydantic", "networkx", "pyyaml", "rich", "numpy"}


def test_importing_vitdsl_with_torch_prints_no_warning():
    run = subprocess.run([sys.executable, "-W", "default", "-c", "import torch, vitdsl"], capture_output=True,
                         text=True, cwd=ROOT)
    assert run.returncode == 0 and run.stderr == ""
