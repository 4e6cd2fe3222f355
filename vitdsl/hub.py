"""Model folders as the Hugging Face Hub keeps them: ``save_pretrained`` writes ``model.safetensors`` (a
checkpoint: weights, blueprint, vitdsl version, SHA-256) and ``blueprint.yaml`` (the same blueprint, for people
and the Hub's file view); ``from_pretrained`` reads such a folder, or downloads one by its repository id
(``owner/name``, through huggingface_hub, an optional dependency). The weights are built from the blueprint
the checkpoint carries, which its hash vouches for; ``blueprint.yaml`` must say the same."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import VitdslError

WEIGHTS, BLUEPRINT = "model.safetensors", "blueprint.yaml"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HINT = f"save_pretrained writes a folder holding {WEIGHTS} and {BLUEPRINT}"


def save_pretrained(model: Any, directory: str | Path) -> Path:
    """Write ``model`` to the folder ``directory`` (made if missing); returns the folder."""
    from .checkpoint import save

    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise VitdslError(f"cannot save to '{folder}': it exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    save(model, folder / WEIGHTS)
    text = yaml.safe_dump(model.blueprint.to_dict(), sort_keys=False, allow_unicode=True, width=100)
    (folder / BLUEPRINT).write_text(f"# written by vitdsl.save_pretrained with {WEIGHTS}, which carries the same "
                                    f"blueprint\n{text}")
    return folder


def from_pretrained(source: str | Path, device: Any = None, revision: str | None = None,
                    **objective_args: Any) -> Any:
    """The model in the folder ``source`` that ``save_pretrained`` wrote, or in the Hugging Face Hub repository
    ``source`` (``owner/name``, at ``revision``), checked as ``load_checkpoint`` checks a checkpoint."""
    from .checkpoint import load

    folder = Path(source)
    if folder.is_dir():
        weights, written = folder / WEIGHTS, folder / BLUEPRINT
        if not weights.is_file():
            raise VitdslError(f"folder '{folder}' holds no {WEIGHTS}", hint=HINT)
    elif not folder.exists() and REPO_ID.match(str(source)):
        from .interop.pretrained import hub_file

        weights = hub_file(str(source), WEIGHTS, f"{source}", revision, "the folder")
        written = hub_file(str(source), BLUEPRINT, f"{source}", revision, "the folder")
    else:
        raise VitdslError(f"'{source}' is neither a folder save_pretrained wrote nor a Hugging Face Hub "
                          "repository id (owner/name)", hint=HINT)
    model = load(weights, device, **objective_args)
    if written.is_file():
        _same_blueprint(written, model)
    return model


def _same_blueprint(path: Path, model: Any) -> None:
    from .blueprint.source import read_yaml

    data, _ = read_yaml(path)  # the hardened reader: a shared file is untrusted
    if data != model.blueprint.to_dict():
        raise VitdslError(f"'{path}' is not the blueprint {path.with_name(WEIGHTS).name} carries (it was edited "
                          "after saving)", hint="the weights fit the blueprint in the checkpoint; to change the "
                                                "model, edit a copy and load the weights with --weights")
