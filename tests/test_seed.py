"""Seeds: the same blueprint and seed give the same weights in any process, the seed stays local to the
build, and every random draw of a compiled network comes from torch's generators."""
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import vitdsl
from vitdsl import VitdslError
from vitdsl.checkpoint import fingerprint
from vitdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = {"depth": 1, "dim": 32, "heads": 2, "dim_head": 16, "mlp": 32, "image_size": 32, "patch": 8, "classes": 10}
CAIT = {"image_size": 32, "patch": 8, "classes": 10, "dim": 32, "depth": 4, "cls_depth": 2, "heads": 2,
        "dim_head": 16, "mlp": 64, "dropout": 0.0, "emb_dropout": 0.0, "layer_dropout": 0.5}
MAE = {"encoder.image_size": 32, "encoder.patch": 8, "encoder.dim": 32, "encoder.depth": 1, "encoder.heads": 2,
       "encoder.dim_head": 8, "encoder.mlp": 32, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2,
       "decoder_dim_head": 8}


def weights(model) -> str:
    return fingerprint({}, model.state_dict())


def test_the_same_seed_gives_the_same_weights_in_another_process():
    child = textwrap.dedent(f"""\
        import random, torch, vitdsl
        from vitdsl.checkpoint import fingerprint
        torch.manual_seed(12345); random.seed(6789)  # whatever the caller's state, the seed decides
        for seed in (7, 8):
            print(fingerprint({{}}, vitdsl.build("vit", overrides={TINY!r}, seed=seed).state_dict()))
    """)
    run = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    seven, eight = run.stdout.split()
    torch.manual_seed(1)
    assert weights(vitdsl.build("vit", overrides=TINY, seed=7)) == seven
    assert seven != eight


def test_a_seeded_build_leaves_the_callers_random_state_alone():
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    vitdsl.build("vit", overrides=TINY, seed=11)
    assert torch.equal(torch.rand(4), expected)


def test_without_a_seed_the_build_draws_from_the_global_generator():
    torch.manual_seed(5)
    first = weights(vitdsl.build("vit", overrides=TINY))
    second = weights(vitdsl.build("vit", overrides=TINY))
    torch.manual_seed(5)
    assert weights(vitdsl.build("vit", overrides=TINY)) == first != second


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "3", True])
def test_a_seed_is_an_integer_in_torchs_range(seed):
    with pytest.raises(VitdslError) as e:
        vitdsl.build("vit", overrides=TINY, seed=seed)
    assert str(e.value) == f"seed must be an integer from 0 to 2**64 - 1, got {seed!r}"


def test_the_largest_seed_and_numpy_integers_work():
    np = pytest.importorskip("numpy")
    assert weights(vitdsl.build("vit", overrides=TINY, seed=np.int64(4))) == \
        weights(vitdsl.build("vit", overrides=TINY, seed=4))
    vitdsl.build("vit", overrides=TINY, seed=2**64 - 1)


def test_an_objective_is_seeded_whole():
    """Encoder, parts and the objective's own tensors (MAE's mask token) all come from the seed."""
    a, b, c = (vitdsl.build("objectives/mae", overrides=MAE, seed=s) for s in (1, 1, 2))
    assert weights(a) == weights(b) != weights(c)
    assert torch.equal(a.mask_token, b.mask_token) and not torch.equal(a.mask_token, c.mask_token)


def test_layer_dropout_follows_torchs_seed_and_not_pythons():
    model = vitdsl.build("cait", overrides=CAIT, seed=0).train()
    x = torch.randn(2, 3, 32, 32)
    outs = []
    for python_seed in (1, 2):
        random.seed(python_seed)
        torch.manual_seed(3)  # seed 3 drops all four body layers: the one kept is a torch draw too
        outs.append(model(x))
    assert torch.equal(outs[0], outs[1])
    torch.manual_seed(3)
    drop = torch.zeros(4).uniform_(0.0, 1.0) < 0.5
    assert bool(drop.all())


def test_build_seed_on_the_command_line(tmp_path, capsys):
    for name in ("a", "b", "c"):
        seed = "9" if name != "c" else "10"
        assert main(["build", "vit", "--seed", seed, "--save", str(tmp_path / f"{name}.pt")]
                    + [f"--set={k}={v}" for k, v in TINY.items()]) == 0
    a, b, c = (torch.load(tmp_path / f"{n}.pt", weights_only=True)["sha256"] for n in "abc")
    assert a == b != c
    capsys.readouterr()
    assert main(["build", "vit", "--seed", "-1"]) == 2
    assert capsys.readouterr().err == "error: seed must be an integer from 0 to 2**64 - 1, got -1\n"
