"""Every user error: one message with file:line:col, the block path, what is wrong and how to fix it;
exit status 2 and no traceback from the command line."""
import subprocess
import sys

import pytest

from vitdsl import VitdslError, load, validate
from vitdsl.blocks import REGISTRY
from vitdsl.cli import main

BASE = """\
name: t
input: {image: [3, 32, 32]}
params: {dim: 64, depth: 2}
layers:
  - patchify: {patch: 8, dim: $dim}
  - repeat: $depth
    layers:
      - global-attn: {heads: 4}
      - mlp: {mult: 2}
  - pool: mean
  - head: {classes: 10}
"""


def fails(path, *extra):
    with pytest.raises(VitdslError) as e:
        validate(str(path), *extra)
    return e.value


def test_the_base_blueprint_is_valid(write):
    assert validate(str(write(BASE))).output.dims == (10,)


def test_malformed_yaml(write):
    path = write(BASE.replace("patch: 8, dim", "patch: 8 dim"))
    e = fails(path)
    assert str(e.location) == f"{path}:5:28"
    assert e.message == "malformed YAML: did not find expected ',' or '}'"


def test_unknown_block(write):
    path = write(BASE.replace("global-attn", "globl-attn"))
    e = fails(path)
    assert str(e.location) == f"{path}:8:9"
    assert e.message == "unknown block 'globl-attn'"
    assert e.hint.startswith("did you mean 'global-attn'?")


def test_unknown_field(write):
    path = write(BASE.replace("heads: 4", "haeds: 4"))
    e = fails(path)
    assert str(e).startswith(f"{path}:8:23: blocks.0.global_attn: unknown field 'haeds' for block 'global-attn'")
    assert e.hint.startswith("did you mean 'heads'?")


@pytest.mark.parametrize("old,message,hint", [
    ("samples: 4", "global-attn no longer samples tokens: adaptive token sampling (ATS) is a block of its own",
     "write '- sampling-attn: {samples: 4, ...}' with the other fields as they are"),
    ("over: channels", "global-attn no longer attends over channels: XCiT's cross-covariance attention is a block "
     "of its own", "write '- channel-attn: {...}' with the other fields as they are, and no over"),
    ("kv_reduction: 2", "global-attn no longer sub-samples keys and values: attention over a feature map is a "
     "block of its own", "write '- reduced-attn: {kv_reduction: 2, ...}' with the other fields as they are"),
    ("value_conv: 3", "global-attn no longer convolves the values: attention over a feature map is a block of its "
     "own", "write '- reduced-attn: {value_conv: 3, ...}' with the other fields as they are"),
    ("dim_value: 32", "global-attn no longer sets the values' width: attention over a feature map is a block of "
     "its own", "write '- reduced-attn: {dim_value: 32, ...}' with the other fields as they are"),
    ("memories: $depth", "global-attn no longer holds memories: learnable-memory attention is a block of its own",
     "write '- memory-attn: {memories: 2, ...}' with the other fields as they are"),
    ("task_tokens: 1", "global-attn no longer isolates task tokens: learnable-memory attention is a block of its "
     "own", "write '- memory-attn: {task_tokens: 1, ...}' with the other fields as they are"),
    ("temperature: learned", "global-attn no longer learns its temperature: locality self-attention (LSA) is a block "
     "of its own", "write '- lsa-attn: {...}' with the other fields as they are (it learns the temperature and "
     "masks each token's own key unless told not to)"),
    ("mask_self: true", "global-attn no longer masks each token's own key: locality self-attention (LSA) is a block "
     "of its own", "write '- lsa-attn: {...}' with the other fields as they are (it learns the temperature and "
     "masks each token's own key unless told not to)"),
])
def test_an_option_that_left_its_block_names_the_new_spelling(write, old, message, hint):
    path = write(BASE.replace("heads: 4", "heads: 4, " + old))
    e = fails(path)
    assert str(e.location) == f"{path}:8:33" and e.path == "blocks.0.global_attn"
    assert (e.message, e.hint) == (message, hint)


@pytest.mark.parametrize("old,message,hint", [
    ("region_tokens: true, rel_pos_index: col-major", "local-attn no longer takes region tokens: RegionViT's "
     "regional-to-local attention is a block of its own",
     "write '- region-attn: {...}' with the other fields as they are, and no region_tokens"),
    ("rel_pos_index: col-major", "local-attn no longer takes rel_pos_index: the transposed bias index is RegionViT's, "
     "an option of region-attn",
     "write '- region-attn: {rel_pos_index: col-major, ...}' on tokens led by region tokens, or leave it out"),
])
def test_region_options_that_left_local_attn_name_region_attn(write, old, message, hint):
    path = write(BASE.replace("global-attn: {heads: 4}", "local-attn: {heads: 4, " + old + "}"))
    e = fails(path)
    assert str(e.location) == f"{path}:8:32" and e.path == "blocks.0.local_attn"
    assert (e.message, e.hint) == (message, hint)


def test_over_groups_is_still_global_attention(write):
    e = fails(write(BASE.replace("heads: 4", "heads: 4, over: groups")))
    assert e.message == "over: groups attends across groups, but these tokens hold none (input here: tokens 16×64)"


def test_wrong_type(write):
    path = write(BASE.replace("heads: 4", "heads: four"))
    e = fails(path)
    assert str(e.location) == f"{path}:8:30"
    assert e.path == "blocks.0.global_attn"
    assert e.message == "field 'heads' of 'global-attn': takes a whole number, not text (got 'four')"


def test_value_out_of_range(write):
    path = write(BASE.replace("mult: 2", "mult: 2, dropout: 1.5"))
    e = fails(path)
    assert str(e.location) == f"{path}:9:33"
    assert e.message == "field 'dropout' of 'mlp': Input should be less than 1 (got 1.5)"


def test_bad_reference(write):
    path = write(BASE.replace("dim: $dim", "dim: $dimm"))
    e = fails(path)
    assert str(e.location) == f"{path}:5:31"
    assert e.message == "unknown parameter '$dimm'"
    assert e.hint == "did you mean 'dim'? (parameters: compat, depth, dim)"  # compat: the overlay's name


def test_expression_may_not_call_arbitrary_code(write):
    path = write(BASE.replace("dim: $dim", "dim: \"${__import__('os').getcwd()}\""))
    e = fails(path)
    assert str(e.location) == f"{path}:5:31"
    assert e.message.startswith("'__import__('os').getcwd()' is not allowed in expression")


def test_from_a_later_layer_is_refused(write):
    path = write("""\
name: t
input: {image: [3, 32, 32]}
layers:
  - patchify: {patch: 8, dim: 64}
  - mlp: {mult: 2}
    name: a
    from: b
  - mlp: {mult: 2}
    name: b
    from: a
  - pool: mean
""")
    e = fails(path)
    assert str(e).startswith(f"{path}:7:11: a: 'from' names 'b', which comes later: a layer can only read "
                             "earlier ones")


def test_from_unknown_name(write):
    path = write(BASE.replace("  - pool: mean", "  - pool: mean\n    from: blokcs"))
    e = fails(path)
    assert str(e.location) == f"{path}:11:11"
    assert e.message == "'from' names 'blokcs', which is no layer of this blueprint"
    assert e.hint.startswith("did you mean 'blocks'?")


def test_unused_branch(write):
    path = write(BASE.replace("  - pool: mean", "  - pool: mean\n    from: patchify"))
    e = fails(path)
    assert e.path == "blocks.1.mlp"
    assert e.message == "the output of 'blocks.1.mlp' is never used"


def test_merge_needs_two_inputs(write):
    path = write(BASE.replace("  - pool: mean", "  - merge: add\n  - pool: mean"))
    e = fails(path)
    assert str(e).startswith(f"{path}:10:12: merge: 'merge' takes at least 2 input(s), got 1")


def test_kind_mismatch(write):
    path = write("""\
name: t
input: {image: [3, 32, 32]}
layers:
  - conv-stem: {channels: [16]}
  - cross-attn: {heads: 4}
""")
    e = fails(path)
    assert str(e.location) == f"{path}:5:17"
    assert e.message == "'cross-attn' takes tokens, but 'conv_stem' (conv-stem) gives image 16×32×32"
    assert e.hint == "cut the map into tokens first, e.g. '- patchify: {patch: 1, dim: ...}'"


def test_patch_does_not_divide_image(write):
    path = write(BASE.replace("patch: 8,", "patch: 7,"))
    e = fails(path)
    assert str(e.location) == f"{path}:5:15"
    assert e.message == "image height 32 is not divisible by the patch height 7 (input here: image 3×32×32)"
    assert e.hint == ("square patches that fit 32×32: 1, 2, 4, 8, 16, 32; "
                      "heights that work here are multiples of 7, e.g. 28, 35; "
                      "square input sizes that work (up to 1024): multiples of 7 from 14 to 1022")


def test_window_does_not_divide_feature_map(write):
    path = write("""\
name: t
input: {image: [3, 224, 224]}
layers:
  - conv-stem: {channels: [16], stride: 2}
  - stages: {dim: [32, 64]}
    layers:
      - mbconv: {dim: $dim, stride: 2}
      - local-attn: {window: 8, dim_head: 8}
""")
    e = fails(path)
    assert str(e).startswith(f"{path}:8:21: stages.1.local_attn: window 8 does not divide the feature map 28×28 "
                             "(height 28) (input here: image 64×28×28)")
    assert e.hint.startswith("windows that fit 28×28: 1, 2, 4, 7, 14, 28; "
                             "square input sizes that work (up to 1024): "
                             "61–64, 125–128, 189–192, 253–256, 317–320, 381–384, ...")


def test_heads_must_divide_width(write):
    path = write(BASE.replace("heads: 4", "heads: 5"))
    e = fails(path)
    assert e.path == "blocks.0.global_attn"
    assert e.message.startswith("width 64 is not divisible by heads 5, so dim_head cannot be derived")


def test_pool_cls_without_cls_token(write):
    e = fails(write(BASE.replace("- pool: mean", "- pool: cls")))
    assert e.message.startswith("'pool: cls' needs a class token, but no tokens block comes before it")
    assert e.hint == "add '- tokens: {cls: 1}' after patchify, or use pool: mean"


def test_unknown_top_level_key(write):
    path = write(BASE.replace("params:", "parms:"))
    with pytest.raises(VitdslError) as e:
        load(str(path))
    assert str(e.value.location) == f"{path}:3:1"
    assert e.value.message == "unknown key 'parms' in the blueprint"
    assert e.value.hint.startswith("did you mean 'params'?")


def test_duplicate_key(write):
    path = write(BASE.replace("params: {dim: 64, depth: 2}", "params: {dim: 64, dim: 2}"))
    with pytest.raises(VitdslError, match="duplicate key 'dim'") as e:
        load(str(path))
    assert str(e.value.location) == f"{path}:3:19"


def test_unknown_variant_and_override(write):
    path = str(write(BASE))
    with pytest.raises(VitdslError, match="blueprint 't' has no variant 'big'"):
        load(path, variant="big")
    with pytest.raises(VitdslError, match="cannot set 'dimm': blueprint 't' has no such parameter") as e:
        load(path, overrides={"dimm": 3})
    assert e.value.hint.startswith("did you mean 'dim'?")


def test_repeat_count_must_not_be_negative(write):
    path = write(BASE)
    with pytest.raises(VitdslError) as e:
        validate(str(path), overrides={"depth": -1})
    assert e.value.message == "repeat takes a whole number ≥ 0, got -1"
    assert str(e.value.location) == f"{path}:6:13"


def test_command_line_error_is_one_message_with_exit_2(write, capsys):
    path = write(BASE.replace("heads: 4", "haeds: 4"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"error: {path}:8:23: blocks.0.global_attn: unknown field 'haeds' for block 'global-attn'",
        "    8 |       - global-attn: {haeds: 4}",
        "      |                       ^",
        "  hint: did you mean 'heads'? (fields: " + ", ".join(sorted(REGISTRY["global-attn"].model_fields)) + ")",
    ]


@pytest.mark.parametrize("args", [["build", "BP"], ["summary", "BP"], ["validate", "BP"],
                                  ["build", "vit", "--set", "depht=3"], ["build", "nothere"],
                                  ["summary", "vit", "--variant", "colossal"], ["build", "vit", "--set", "novalue"],
                                  ["schema", "--output", "/nonexistent/dir/s.json"],
                                  ["build", "vit", "--set", "depth=1", "--save", "/nonexistent/dir/m.pt"]])
def test_no_traceback_from_the_command_line(write, args):
    path = write(BASE.replace("patch: 8,", "patch: 7,"))
    args = [str(path) if a == "BP" else a for a in args]
    run = subprocess.run([sys.executable, "-m", "vitdsl", *args], capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("error: ")
    assert run.stdout == ""
