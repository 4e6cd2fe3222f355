"""Hostile and malformed blueprints: each one a clear, located error in bounded time, with nothing disclosed.

Every case goes through the command line in-process (``vitdsl validate``) and must exit 2 with one
``error:`` message — no traceback, no internal error — naming the expected problem. The time bound only
catches unbounded work (a hang or a blow-up takes minutes); the figures are in the closing notes.
"""
from __future__ import annotations

import time

import pytest

from vitdsl.cli import main

OK = "name: ok\ninput: {tokens: [4, 8]}\nlayers:\n  - mlp: {mult: 2}\n"
LAUGHS = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
SECRET = "TOKEN=hunter2"


def bp(layers: str = "  - mlp: {mult: 2}\n", params: str = "", head: str = "name: t\ninput: {tokens: [4, 8]}\n"):
    return head + (f"params: {params}\n" if params else "") + "layers:\n" + layers


CASES = {
    # YAML itself
    "unclosed-flow": ("name: t\ninput: {tokens: [4, 8]\nlayers: []\n", "malformed YAML"),
    "bad-indent": ("name: t\n  input: x\n", "malformed YAML"),
    "tab-indent": ("name: t\nlayers:\n\t- mlp: {}\n", "malformed YAML"),
    "duplicate-key": ("name: t\nname: u\n", "duplicate key 'name'"),
    "merge-key": ("a: &a {x: 1}\nb: {<<: *a}\n", "YAML merge keys ('<<') are not supported"),
    "list-key": ("? [a]\n: 1\n", "a mapping key must be a plain name"),
    "top-level-list": ("- mlp: {}\n", "a blueprint must be a mapping"),
    "top-level-scalar": ("hello\n", "a blueprint must be a mapping"),
    "empty": ("", "a blueprint must be a mapping"),
    "recursive-alias-seq": ("a: &a [*a]\n", "a YAML alias refers to a value that contains it"),
    "recursive-alias-map": ("a: &a {b: *a}\n", "a YAML alias refers to a value that contains it"),
    "billion-laughs": (LAUGHS, "the document expands to more than 50,000 values"),
    "deep-flow": ("a: " + "[" * 2000 + "]" * 2000 + "\n", "malformed YAML"),
    "deep-block": ("".join("  " * i + f"k{i}:\n" for i in range(80)) + "  " * 80 + "v\n",
                   "the document nests deeper than 64 levels"),
    "python-object-tag": ("name: !!python/object/apply:os.system [echo hi]\n", "is not allowed in a blueprint"),
    "python-name-tag": ("name: !!python/name:os.system\n", "is not allowed in a blueprint"),
    "local-tag": ("name: !env HOME\n", "the YAML tag '!env' is not allowed in a blueprint"),
    "binary-tag": ("name: !!binary aGVsbG8=\n", "is not allowed in a blueprint"),
    "set-tag": ("name: !!set {a}\n", "is not allowed in a blueprint"),
    "timestamp": ("name: 2001-01-01\n", "the YAML tag 'tag:yaml.org,2002:timestamp' is not allowed"),
    "inf": (bp("  - mlp: {mult: .inf}\n"), "bp.yaml:4:17: mlp: field 'mult' of 'mlp': takes a finite number, not inf"),
    "nan": (bp("  - mlp: {mult: '${x}'}\n", params="{x: .nan}"), "mlp: field 'mult' of 'mlp': takes a finite number"),
    "int-2-64": (bp("  - mlp: {hidden: 18446744073709551616}\n"),
                 "field 'hidden' of 'mlp': is too large: numbers must stay below 2**63"),
    "int-digits": (bp("  - mlp: {hidden: " + "9" * 60 + "}\n"), "is beyond 64-bit integers"),
    "int-huge-digits": (bp(params="{x: " + "9" * 5000 + "}"), "beyond 64-bit integers"),
    "huge-file": (OK + "#" * (1 << 20), "is larger than 1,048,576 bytes"),
    # the format
    "unknown-top-key": ("name: t\ninput: {tokens: [4, 8]}\nlayerz: []\n", "unknown key 'layerz' in the blueprint"),
    "missing-name": ("input: {tokens: [4, 8]}\nlayers:\n  - mlp: {}\n", "missing required key 'name'"),
    "two-inputs": ("name: t\ninput: {tokens: [4, 8], vector: [8]}\nlayers:\n  - mlp: {}\n", "exactly one input"),
    "no-layers": ("name: t\ninput: {tokens: [4, 8]}\nlayers: []\n", "needs at least one layer"),
    "layer-not-mapping": (bp("  - 3\n"), "a layer must be a mapping"),
    "unknown-block": (bp("  - mlpp: {}\n"), "unknown block 'mlpp'"),
    "unknown-field": (bp("  - mlp: {mul: 2}\n"), "unknown field 'mul' for block 'mlp'"),
    "two-blocks": (bp("  - mlp: {}\n    norm: layer\n"), "one layer item names several blocks"),
    "bad-name": (bp("  - mlp: {}\n    name: 3x\n"), "is not a valid identifier"),
    "name-with-escape": (bp("  - mlp: {}\n    name: \"a\\e[2J\"\n"), "is not a valid identifier"),
    "input-zero": ("name: t\ninput: {tokens: [0, 8]}\nlayers:\n  - mlp: {}\n", "positive whole numbers"),
    "input-rank": ("name: t\ninput: {tokens: [8]}\nlayers:\n  - mlp: {}\n", "a tokens input has 2 sizes"),
    # expressions
    "power-tower": (bp(params="{x: '${9**9**9}'}"), "makes an integer beyond 64 bits"),
    "power-10": (bp(params="{x: '${10**10**10}'}"), "makes an integer beyond 64 bits"),
    "list-times": (bp(params="{x: '${[0]*10**9}'}"), "makes a sequence of more than 100,000 items"),
    "text-times": (bp(params="{x: '${\"a\"*10**9}'}"), "makes a sequence of more than 100,000 items"),
    "list-plus": (bp(params="{x: '${[0]*99999 + [0]*99999}'}"), "more than 100,000"),
    "range-huge": (bp(params="{x: '${range(10**9)}'}"), "has 1,000,000,000 numbers, more than 100,000"),
    "comprehension-bomb": (bp(params="{x: '${[[0 for a in range(99999)] for b in range(99999)]}'}"),
                           "takes more than 50,000 steps"),
    "product-huge": (bp(params="{x: '${2**40 * 2**40}'}"), "beyond 64 bits"),
    "sum-long": (bp(params="{x: '${sum(range(99999))}'}"), "takes more than 50,000 steps"),
    "deep-parens": (bp(params="{x: '${" + "(" * 500 + "1" + ")" * 500 + "}'}"), "expression"),
    "unary-chain": (bp(params="{x: '${" + "-" * 1500 + "1}'}"), "nests too deeply"),
    "long-expression": (bp(params="{x: '${" + "1+" * 1500 + "1}'}"), "is longer than 2,000"),
    "float-overflow": (bp(params="{x: '${2.0**5000}'}"), "makes a number too large to hold"),
    "int-of-inf": (bp(params="{x: '${int(1e308*10)}'}"), "cannot convert float infinity to integer"),
    "div-zero": (bp(params="{x: '${1 // 0}'}"), "cannot evaluate '${1 // 0}': integer division or modulo by zero"),
    "attribute": (bp(params="{x: '${dims.__class__}'}"), "is not allowed in expression"),
    "dunder-call": (bp(params="{x: \"${__import__('os')}\"}"), "is not allowed in expression"),
    "lambda": (bp(params="{x: '${(lambda: 1)()}'}"), "is not allowed in expression"),
    "format": (bp(params="{x: \"${'%s' % 1}\"}"), "text formatting is not allowed"),
    "walrus": (bp(params="{x: '${(y := 1)}'}"), "is not allowed in expression"),
    "unknown-param": (bp("  - mlp: {mult: $mlt}\n", params="{mult: 2}"), "unknown parameter '$mlt'"),
    "param-cycle": (bp(params="{a: $b, b: $a}"), "parameters refer to each other in a cycle: a -> b -> a"),
    "unclosed-expr": (bp(params="{x: '${1 + 2'}"), "is not closed"),
    # structure
    "repeat-billion": (bp("  - repeat: 1000000000\n    layers:\n      - mlp: {}\n"),
                       "repeat 1,000,000,000 is more than a blueprint's 10,000 blocks"),
    "repeat-nested": (bp("  - repeat: 1000\n    layers:\n      - repeat: 1000\n        layers:\n"
                         "          - mlp: {}\n"), "the blueprint expands to more than 10,000 blocks"),
    "parallel-million": (bp("  - parallel: 1000000\n    layers:\n      - mlp: {}\n"), "is more than"),
    "stages-many": (bp("  - stages: {d: '${range(99999)}'}\n    layers:\n      - mlp: {}\n"),
                    "more than 10,000 blocks"),
    "repeat-negative": (bp("  - repeat: -1\n    layers:\n      - mlp: {}\n"), "repeat takes a whole number ≥ 0"),
    "repeat-bool": (bp("  - repeat: true\n    layers:\n      - mlp: {}\n"), "repeat takes a whole number ≥ 0"),
    "from-later": (bp("  - mlp: {}\n    from: b\n  - mlp: {}\n    name: b\n"), "which comes later"),
    "from-unknown": (bp("  - mlp: {}\n    from: nowhere\n"), "which is no layer of this blueprint"),
    "when-not-bool": (bp("  - mlp: {}\n    when: 3\n"), "'when' takes true or false"),
    "share-itself": (bp("  - mlp: {}\n    name: a\n    share: a\n"), "needs an enclosing repeat"),
    "output-unknown": (bp() + "output: nope\n", "output names 'nope', which is no layer"),
    "extends-empty": ("extends: ''\nname: t\n", "the blueprint name '' names no file"),
    "extends-dot": ("extends: .\nname: t\n", "the blueprint name '.' names no file"),
    "encoder-objective": ("extends: objectives/mae\nname: m\nencoder: objectives/dino\n",
                          "the encoder 'dino' is an objective; the encoder must be a network blueprint"),
    "encoder-itself": ("extends: objectives/mae\nname: m\nencoder: bp.yaml\n",
                       "the encoder 'm' is an objective; the encoder must be a network blueprint"),
}


def _run(argv, capsys):
    start = time.perf_counter()
    code = main(argv)
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    return code, err, took


@pytest.mark.parametrize("text,expected", CASES.values(), ids=CASES.keys())
def test_malformed_blueprint_is_one_clear_error(tmp_path, capsys, text, expected):
    path = tmp_path / "bp.yaml"
    path.write_text(text)
    code, err, took = _run(["validate", str(path)], capsys)
    assert code == 2, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err and "internal error" not in err
    assert expected in err, err
    assert str(path) in err, f"no location in: {err}"
    assert took < 10, f"took {took:.1f} s"


def test_zoo_and_yaml_features_people_use_still_work(tmp_path):
    """The limits refuse nothing real: a BOM, CRLF line ends, aliases that repeat finished values."""
    from vitdsl import validate

    (tmp_path / "a.yaml").write_bytes(b"\xef\xbb\xbf" + OK.replace("\n", "\r\n").encode())
    assert validate(tmp_path / "a.yaml").output.dims == (4, 8)
    (tmp_path / "b.yaml").write_text("name: b\ninput: {tokens: [4, 8]}\nlayers:\n  - &m {mlp: {mult: 2}}\n  - *m\n")
    assert len(validate(tmp_path / "b.yaml").order) == 2


@pytest.mark.parametrize("argv,expected", [
    (["summary", "vit", "--batch", str(10**20)], "error: a batch of 100,000,000,000,000,000,000 is too large to "
                                                  "trace: its largest step would take "),
    (["summary", "vit", "--batch", "0"], "error: --batch must be at least 1, got 0"),
    (["validate", "vit", "--set", f"image_size={2**62}"], "the input (image 3×4611686018427387904×"
                                                          "4611686018427387904) holds 63,802,"),
    (["summary", "vit", "--set", "image_size=1000000000"], "numbers per sample, 2**48 or more"),
])
def test_sizes_torch_cannot_hold_are_refused_from_the_command_line(capsys, argv, expected):
    code, err, took = _run(argv, capsys)
    assert code == 2 and expected in err and "internal error" not in err, err
    assert took < 10, f"took {took:.1f} s"


def test_a_batch_from_python_is_checked_too():
    import vitdsl
    from vitdsl import VitdslError

    with pytest.raises(VitdslError, match="the batch size must be a whole number of at least 1, got 0"):
        vitdsl.summary("vit", batch=0)
    assert vitdsl.summary("vit", batch=1000).batch == 1000


@pytest.mark.parametrize("argv,expected", [
    (["validate", "vit", "--set", "classes=&a [*a]"], "override 'classes':1:1: a YAML alias refers to a value that "
                                                       "contains it"),
    (["validate", "vit", "--set", "classes=!!python/name:os.system"], "override 'classes':1:1: the YAML tag "
                                                                       "'tag:yaml.org,2002:python/name:os.system' is "
                                                                       "not allowed in a blueprint"),
    (["validate", "vit", "--replace", "ff=[" * 100 + "]" * 100], "replacement 'ff':1:"),
    (["validate", "vit", "--replace", "ff={mlp: {mult: .inf}}"], "replacement 'ff': blocks.0.ff: field 'mult' of "
                                                                  "'mlp': takes a finite number, not inf"),
])
def test_command_line_values_are_read_like_blueprint_files(capsys, argv, expected):
    code, err, took = _run(argv, capsys)
    assert code == 2 and err.startswith("error: " + expected), err
