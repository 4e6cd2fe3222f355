"""Distillation: the loss equals vit-pytorch's DistillWrapper's (soft and hard) with the same student weights
and the same teacher; the teacher never trains; a missing or unfit teacher is a clear error."""
import copy

import pytest
import torch
from objective_refs import grads_reach_every_parameter
from torch import nn

import vitdsl
from vitdsl import VitdslError
from vitdsl.interop.maps.distill_objective import import_wrapper

SMALL = {"encoder.image_size": 32, "encoder.patch": 8, "encoder.dim": 32, "encoder.depth": 2, "encoder.heads": 2,
         "encoder.dim_head": 8, "encoder.mlp": 64, "encoder.classes": 5}
STUDENT = dict(image_size=32, patch_size=8, num_classes=5, dim=32, depth=2, heads=2, dim_head=8, mlp_dim=64)


def small_teacher(classes=5):
    torch.manual_seed(7)
    return nn.Sequential(nn.Conv2d(3, 4, 8, stride=8), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, classes))


def pair(temperature=3.0, alpha=0.5, hard=False, layernorm=False, **settings):
    """vit-pytorch's wrapper and ours, with the same weights and each its own copy of the same teacher."""
    from vit_pytorch.distill import DistillableViT, DistillWrapper

    torch.manual_seed(0)
    teacher = small_teacher()
    ref = DistillWrapper(teacher=teacher, student=DistillableViT(**STUDENT), temperature=temperature, alpha=alpha,
                         hard=hard, mlp_layernorm=layernorm)
    overrides = {**SMALL, "temperature": temperature, "alpha": alpha, "hard": hard, **settings}
    if layernorm:
        overrides["encoder.distill_norm"] = "layer"
    ours = vitdsl.build("objectives/distill", overrides=overrides, teacher=copy.deepcopy(teacher))
    import_wrapper(ours, ref)
    return ref, ours


def batch(n=4):
    torch.manual_seed(1)
    return torch.randn(n, 3, 32, 32), torch.randint(0, 5, (n,))


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
@pytest.mark.parametrize("temperature, alpha", [(3.0, 0.5), (1.0, 0.2), (7.5, 0.9)])
def test_loss_equals_vit_pytorch(hard, temperature, alpha):
    ref, ours = pair(temperature, alpha, hard)
    ref.eval(), ours.eval()
    x, y = batch()
    expected, got = ref(x, y), ours(x, y)
    assert abs(got.item() - expected.item()) <= 1e-5
    # temperature and alpha for one call, as vit-pytorch's forward takes them
    assert abs(ours(x, y, temperature=2.0, alpha=0.3).item() - ref(x, y, temperature=2.0, alpha=0.3).item()) <= 1e-5


def test_distillation_head_with_a_layer_norm_equals_vit_pytorch():
    ref, ours = pair(layernorm=True)
    ref.eval(), ours.eval()
    x, y = batch()
    assert abs(ours(x, y).item() - ref(x, y).item()) <= 1e-5


def test_a_teacher_that_follows_train_mode_equals_vit_pytorch_in_training():
    # no dropout in the student; the teacher's batch norm normalises by the batch, on both sides
    ref, ours = pair(teacher_eval=False, **{"encoder.dropout": 0.0, "encoder.emb_dropout": 0.0})
    ref.train(), ours.train()
    x, y = batch()
    assert abs(ours(x, y).item() - ref(x, y).item()) <= 1e-5
    assert torch.allclose(ours.teacher[1].running_mean, ref.teacher[1].running_mean)


def test_the_teacher_runs_in_eval_mode_and_never_trains():
    _, ours = pair()
    ours.train()
    stats = ours.teacher[1].running_mean.clone()
    x, y = batch()
    ours(x, y).backward()
    assert not ours.teacher.training
    assert torch.equal(ours.teacher[1].running_mean, stats)  # batch-norm statistics untouched
    assert all(p.grad is None for p in ours.teacher.parameters())
    assert all(name.startswith("teacher.") for name in grads_reach_every_parameter(ours))
    assert grads_reach_every_parameter(ours.encoder) == []


def test_backward_reaches_every_student_parameter():
    ours = vitdsl.build("objectives/distill", overrides=SMALL, teacher=small_teacher())
    x, y = batch()
    ours(x, y).backward()
    assert grads_reach_every_parameter(ours.encoder) == []


def test_readme_sizes_and_summary_leave_the_teacher_out():
    s = vitdsl.summary("objectives/distill")
    assert s.total_params == 43_073_488  # vit-pytorch's DistillWrapper, README arguments, teacher aside
    assert s.own == [] and s.parts == {}
    ours = vitdsl.build("objectives/distill", overrides=SMALL, teacher=small_teacher())
    assert vitdsl.summary(ours).total_params == sum(p.numel() for p in ours.encoder.parameters())


def test_cli_build_prints_the_student(capsys):
    from vitdsl.cli import main

    assert main(["build", "objectives/distill", "--set", "encoder.image_size=32", "--set", "encoder.dim=32"]) == 0
    out = capsys.readouterr().out
    assert "objective 'distill'" in out and "distill_head" in out and "teacher" not in out


def test_a_student_with_one_output_distils_through_its_class_logits():
    from vitdsl.blueprint.load import from_data

    bp = vitdsl.load("objectives/distill", overrides=SMALL)
    data = bp.to_dict()
    data["encoder"]["blueprint"] = "vit"

    ours = vitdsl.build(from_data(data, bp.source, bp.file), teacher=small_teacher()).eval()
    x, y = batch()
    logits, teacher = ours.encoder(x), ours.teacher(x)
    t = 3.0
    soft = nn.functional.kl_div(logits.div(t).log_softmax(-1), teacher.div(t).softmax(-1), reduction="batchmean")
    expected = 0.5 * nn.functional.cross_entropy(logits, y) + 0.5 * soft * t * t
    assert abs(ours(x, y).item() - expected.item()) <= 1e-6


# -- a teacher blueprint ------------------------------------------------------------------------------

TEACHER_BP = """
name: with_teacher
encoder: {blueprint: distill_vit, set: {image_size: 32, patch: 8, dim: 32, depth: 1, heads: 2, dim_head: 8,
          mlp: 64, classes: 5}}
objective:
  distill:
    temperature: 2
    teacher: {blueprint: vit, set: {image_size: 32, patch: 8, dim: 16, depth: 1, heads: 2, dim_head: 8, mlp: 32,
              classes: CLASSES}WEIGHTS}
"""


def teacher_bp(write, classes=5, weights=""):
    return write(TEACHER_BP.replace("CLASSES", str(classes)).replace("WEIGHTS", weights))


def test_a_teacher_blueprint_is_built_and_its_weights_loaded(write, tmp_path):
    teacher = vitdsl.build("vit", overrides={"image_size": 32, "patch": 8, "dim": 16, "depth": 1, "heads": 2,
                                             "dim_head": 8, "mlp": 32, "classes": 5})
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    ours = vitdsl.build(teacher_bp(write, weights=", weights: teacher.pt"))
    for k, v in teacher.state_dict().items():
        assert torch.equal(ours.teacher.state_dict()[k], v)
    x, y = batch()
    ours(x, y).backward()
    assert grads_reach_every_parameter(ours.encoder) == []
    assert vitdsl.summary(teacher_bp(write)).own == []  # the summary leaves the teacher out


def test_a_teacher_blueprint_of_other_classes_is_refused(write):
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(teacher_bp(write, classes=7))
    assert e.value.message == ("distill: the teacher 'vit' returns vector 7; it must return the student's 5 class "
                               "logits")
    assert str(e.value.location).endswith("bp.yaml:7:5")  # the objective's settings


def test_a_missing_teacher_blueprint_is_refused(write):
    path = write(TEACHER_BP.replace("{blueprint: vit,", "{blueprint: vti,").replace("CLASSES", "5")
                 .replace("WEIGHTS", ""))
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.message == "distill: teacher: no blueprint 'vti': not a file and not in the zoo"
    assert "did you mean 'vit'?" in e.value.hint


def test_teacher_weights_that_are_missing_or_do_not_fit_are_refused(write, tmp_path):
    with pytest.raises(VitdslError) as e:
        vitdsl.build(teacher_bp(write, weights=", weights: nothing.pt"))
    assert e.value.message == "distill: no teacher weights at 'nothing.pt'"
    torch.save({"0.weight": torch.zeros(1)}, tmp_path / "wrong.pt")
    with pytest.raises(VitdslError, match=r"^distill: the teacher weights at '.*wrong.pt' do not fit the teacher "
                                          r"blueprint: Missing key\(s\) in state_dict"):
        vitdsl.build(teacher_bp(write, weights=", weights: wrong.pt"))


def test_a_teacher_named_twice_is_refused(write):
    with pytest.raises(VitdslError) as e:
        vitdsl.build(teacher_bp(write), teacher=small_teacher())
    assert e.value.message == "distill: the blueprint names a teacher, and build got another"


# -- errors at forward time ---------------------------------------------------------------------------

def test_no_teacher_is_a_clear_error_at_forward_time():
    ours = vitdsl.build("objectives/distill", overrides=SMALL)
    x, y = batch()
    with pytest.raises(VitdslError) as e:
        ours(x, y)
    assert e.value.message == "distill: there is no teacher to learn from"
    assert e.value.hint == ("pass one to vitdsl.build('objectives/distill', teacher=model), assign "
                            "objective.teacher = model, or name a teacher blueprint in the objective's 'teacher' "
                            "setting")
    ours.teacher = small_teacher()  # assigned later: registered as the submodule
    assert "teacher.5.weight" in ours.state_dict()
    ours(x, y).backward()


def test_a_teacher_of_other_classes_is_a_clear_error():
    ours = vitdsl.build("objectives/distill", overrides=SMALL, teacher=small_teacher(classes=7))
    x, y = batch()
    with pytest.raises(VitdslError) as e:
        ours(x, y)
    assert e.value.message == ("distill: the teacher returned logits of shape (4, 7); the student scores 5 classes "
                               "for 4 images, so it must return (4, 5)")
    assert e.value.hint == "the teacher and the student must score the same classes"


def test_a_teacher_that_returns_a_tuple_or_is_no_module_is_refused():
    x, y = batch()
    two = vitdsl.build("distill_vit", overrides={k.removeprefix("encoder."): v for k, v in SMALL.items()})
    ours = vitdsl.build("objectives/distill", overrides=SMALL, teacher=two)
    with pytest.raises(VitdslError) as e:
        ours(x, y)
    assert e.value.message == "distill: the teacher returned a tuple; it must return one tensor of class logits"
    with pytest.raises(VitdslError) as e:
        vitdsl.build("objectives/distill", overrides=SMALL, teacher=lambda images: images)
    assert e.value.message == "distill: the teacher must be an nn.Module, got function"


def test_a_student_without_class_logits_is_refused(write):
    path = write("""
name: bad
encoder:
  blueprint:
    name: enc
    input: {image: [3, 32, 32]}
    layers:
      - patchify: {patch: 8, dim: 32}
      - global-attn: {heads: 2, dim_head: 8}
objective:
  distill: {}
""")
    with pytest.raises(VitdslError) as e:
        vitdsl.validate(path)
    assert e.value.message == ("distill: the student 'enc' must return class logits, and optionally distillation "
                               "logits, as vectors; it returns global_attn (tokens 16×32)")
    assert e.value.hint == "use distill_vit, or end the encoder in heads on its pooled tokens"


def test_settings_are_checked():
    with pytest.raises(VitdslError) as e:
        vitdsl.validate("objectives/distill", overrides={"alpha": 1.5})
    assert e.value.message == "distill: alpha: Input should be less than or equal to 1"
    with pytest.raises(VitdslError) as e:
        vitdsl.validate("objectives/distill", overrides={"temperature": 0})
    assert e.value.message == "distill: temperature: Input should be greater than 0"


def test_teacher_weights_are_read_as_untrusted_files(write, tmp_path):
    """A teacher weights file gets a checkpoint's checks: no code, no pickle bombs, one clear error."""
    import os
    import pickle

    (tmp_path / "code.pt").write_bytes(pickle.dumps({"cmd": os.system}))
    with pytest.raises(VitdslError) as e:
        vitdsl.build(teacher_bp(write, weights=", weights: code.pt"))
    assert e.value.message == (f"distill: teacher weights file '{tmp_path / 'code.pt'}' is a bare pickle, not a "
                               "weights file: torch.save has written zip archives since torch 1.6")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(VitdslError) as e:
        vitdsl.build(teacher_bp(write, weights=", weights: list.pt"))
    assert e.value.message.endswith("list.pt' holds no state_dict (a mapping of names to tensors)")
    (tmp_path / "text.pt").write_text("not weights")
    with pytest.raises(VitdslError, match="is not a weights file: it is neither a zip archive nor a pickle"):
        vitdsl.build(teacher_bp(write, weights=", weights: text.pt"))
