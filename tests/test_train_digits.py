"""examples/train_digits.py: a shortened run trains (the loss falls) and main returns its metrics; the
example's blueprints are not part of the zoo."""
import importlib.util
import io
from pathlib import Path

import pytest
from rich.console import Console

pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def script():
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLES / "train_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_quick_run_lowers_the_loss_and_returns_its_metrics():
    out = io.StringIO()
    metrics = script().main(["--quick", "--seed", "1"], console=Console(file=out, width=120))
    losses = metrics["losses"]
    assert metrics["epochs"] == len(losses) == 3
    assert losses[-1] < 0.8 * losses[0]
    assert metrics["test_accuracy"] > 0.5  # ten classes: chance is 0.1
    text = out.getvalue()
    assert "digits_vit: 69,834 parameters" in text and "test accuracy" in text  # qkv biases: 2 × 3 × 64 of it


def test_a_quick_run_with_mae_pretraining():
    metrics = script().main(["--quick", "--pretrain", "mae", "--set", "depth=1"],
                            console=Console(file=io.StringIO()))
    assert len(metrics["pretrain_losses"]) == 2 and metrics["pretrain_losses"][-1] < metrics["pretrain_losses"][0]
    assert metrics["losses"][-1] < metrics["losses"][0]


def test_the_examples_are_not_in_the_zoo():
    from vitdsl.blueprint.load import zoo_names

    names = zoo_names(examples=True)
    assert not any("digits" in n for n in names)
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} == {"digits_vit", "digits_mae"}
