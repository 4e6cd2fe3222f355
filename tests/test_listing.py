"""`vitdsl list` remembers what it validated (vitdsl.listing), and never serves a stale answer; the summary's
trace of repeated blocks gives what tracing every block gives."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vitdsl
from vitdsl import listing
from vitdsl.cli import main
from vitdsl.errors import VitdslError
from vitdsl.trace import summary as trace_summary

ROOT = Path(__file__).resolve().parents[1]
BASE = """name: base
input: {{image: [3, 32, 32]}}
params: {{dim: {dim}}}
layers:
  - patchify: {{patch: 8, dim: $dim}}
  - pool: mean
  - head: {{classes: 10}}
"""


def expected(dim: int) -> int:
    """The parameters of BASE with ``dim``, counted by validating it outside the cache."""
    from vitdsl.graph.build import info

    return info(vitdsl.validate(vitdsl.loads(BASE.format(dim=dim))))["params"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VITDSL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE.format(dim=16))
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: child\ndescription: a child\n")
    return tmp_path


def _params(bp):
    from vitdsl.graph.build import build_graph, info

    return info(build_graph(bp.resolve()))["params"]


def _served(monkeypatch):
    """From now on, loading a blueprint fails: whatever list answers comes from its cache."""
    def refuse(*a, **k):
        raise AssertionError("validated again")

    monkeypatch.setattr(listing, "load", refuse)


def test_a_row_is_remembered_until_a_file_it_read_changes(cache, monkeypatch):
    first = listing.Cache()
    assert first.row(str(cache / "child.yaml"), _params) == (expected(16), "a child")
    first.save()
    entry = json.loads(next((cache / "cache").glob("list-*.json")).read_text())["entries"]
    assert sorted(p for p, _ in entry[str(cache / "child.yaml")]["files"]) == [str(cache / "base.yaml"),
                                                                             str(cache / "child.yaml")]
    real_load = listing.load
    _served(monkeypatch)
    assert listing.Cache().row(str(cache / "child.yaml"), _params) == (expected(16), "a child")
    # the parent changes: the child's row is validated afresh
    (cache / "base.yaml").write_text(BASE.format(dim=24))
    monkeypatch.setattr(listing, "load", real_load)
    again = listing.Cache()
    assert again.row(str(cache / "child.yaml"), _params) == (expected(24), "a child")
    again.save()
    _served(monkeypatch)
    assert listing.Cache().row(str(cache / "child.yaml"), _params) == (expected(24), "a child")


def test_a_broken_blueprint_is_refused_every_time(cache, monkeypatch):
    first = listing.Cache()
    first.row(str(cache / "child.yaml"), _params)
    first.save()
    (cache / "child.yaml").write_text("extends: base.yaml\nname: child\nlayers: [{nonsense: 1}]\n")
    for _ in range(2):
        with pytest.raises(VitdslError) as e:
            c = listing.Cache()
            try:
                c.row(str(cache / "child.yaml"), _params)
            finally:
                c.save()
        assert str(e.value).startswith(f"{cache / 'child.yaml'}:3:11: unknown block 'nonsense'")


def test_a_new_file_that_changes_where_a_name_resolves_is_noticed(cache, monkeypatch):
    (cache / "child.yaml").write_text("extends: vit\nname: child\n")  # the zoo's vit, while ./vit is absent
    first = listing.Cache()
    assert first.row(str(cache / "child.yaml"), _params)[0] == 54_630_376  # its default, as `vitdsl validate vit` says
    first.save()
    (cache / "vit").write_text(BASE.format(dim=16))  # now the name finds this file first
    assert listing.Cache().row(str(cache / "child.yaml"), _params)[0] == expected(16)


def test_another_vitdsl_version_or_source_has_its_own_cache(cache, monkeypatch):
    first = listing.Cache()
    first.row(str(cache / "child.yaml"), _params)
    first.save()
    assert listing.Cache().entries
    monkeypatch.setattr(vitdsl, "__version__", "0.0.0-other")
    assert listing.Cache().entries == {}
    monkeypatch.undo()
    source = ROOT / "vitdsl" / "listing.py"
    stat = source.stat()
    try:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
        assert listing.Cache().entries == {}
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_an_unreadable_cache_is_ignored(cache):
    first = listing.Cache()
    first.row(str(cache / "child.yaml"), _params)
    first.save()
    first.file.write_text("{not json")
    assert listing.Cache().entries == {}
    assert listing.Cache().row(str(cache / "child.yaml"), _params) == (expected(16), "a child")


def test_list_prints_the_same_from_its_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITDSL_CACHE_DIR", str(tmp_path))
    assert main(["list"]) == 0
    fresh = capsys.readouterr().out
    _served(monkeypatch)
    assert main(["list"]) == 0
    assert capsys.readouterr().out == fresh
    assert "79,981,380" in fresh
    assert expected(16) != expected(24)


def test_list_with_a_plugin_validates_afresh(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VITDSL_CACHE_DIR", str(tmp_path))
    assert main(["list"]) == 0
    capsys.readouterr()
    _served(monkeypatch)
    assert main(["--plugin", str(ROOT / "tests" / "user_blocks.py"), "list"]) == 3  # the refusal above
    assert "AssertionError: validated again" in capsys.readouterr().err


def test_list_does_not_import_torch(tmp_path):
    code = ("import sys\nfrom vitdsl.cli import main\nassert main(['list']) == 0\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    env = dict(os.environ, VITDSL_CACHE_DIR=str(tmp_path))
    for _ in range(2):  # validating the zoo, then from the cache
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        assert run.stderr.split() == ["False"]
        assert "maxvit" in run.stdout


@pytest.mark.parametrize("name, overrides", [
    ("vit", {"image_size": 32, "patch": 8, "dim": 32, "depth": 3, "heads": 2, "dim_head": 16, "mlp": 64}),
    ("maxvit", {"image_size": 56, "stem": 8, "dims": [8, 16], "depths": [2, 3], "dim_head": 4}),
    ("cct", None), ("swin", None)])
def test_repeated_blocks_trace_as_if_each_were_traced(name, overrides, monkeypatch):
    for batch in (1, 2):
        once = vitdsl.summary(name, overrides=overrides, batch=batch).to_dict()
        monkeypatch.setattr(trace_summary, "_repeat_key", lambda *a: None)
        every = vitdsl.summary(name, overrides=overrides, batch=batch).to_dict()
        monkeypatch.undo()
        assert once == every
