"""Every Python and shell snippet of README.md and docs/**/*.md runs, so the docs cannot drift.

One test per fenced block, in page order, named by the block's file:line. Each page runs in a scratch
directory that looks like the repository root (a link to each of its entries): paths read as in the
docs, and files a snippet writes (``--save``) stay out of the checkout, for the page's later snippets.
By language tag:

* ``python`` — executed in this process with ``exec``, a fresh namespace per block and torch seeded
  with 0. A block preceded by ``<!-- snippet: continues -->`` runs in the namespace of the page's
  previous Python block instead (the page chains them explicitly). Blocks a snippet registers
  (``vitdsl.register_block``) are unregistered afterwards.
* ``sh``, ``bash``, ``console`` — every command line is run. ``vitdsl ...`` (or ``python -m vitdsl ...``)
  runs ``sys.executable -m vitdsl ...`` in a subprocess and must exit 0. In a ``console`` block commands
  follow a ``$ `` prompt and the lines up to the next prompt are the output the tool prints (stdout,
  then stderr): it must match, where ``...`` stands for any text, within a line or for whole lines (a
  command shown without output is run, its output not compared); an output that starts with ``error:``
  documents a user error, whose exit status is 2. Nothing is run through a shell: pipes, redirections
  and other programs are refused.
* ``make TARGET`` — the README's quick start. ``make demo`` and ``make test`` create a virtual
  environment and install packages, and ``make test`` runs this suite, so they cannot run inside it.
  What the test does instead: ``make -n TARGET`` must succeed (the target exists and its recipe
  expands), and every ``vitdsl`` command of that recipe is run as above — ``make demo``'s summary is
  printed for real; the venv, pip and pytest steps are not run.
* ``yaml``, ``text``, ``json``, ``toml`` — not executed (blueprint excerpts, quoted output). Any other
  tag, and a fence without one, is an error, so no runnable snippet can slip through untested.

A Python or YAML block preceded by ``<!-- snippet: file NAME -->`` is also a file: it is written as NAME to
the page's scratch directory before any later block of the page runs (a plugin the page's ``vitdsl
--plugin NAME`` imports, a blueprint it builds); a Python one still runs as above.

A block that needs a reference model says so on the line before it:
``<!-- snippet: needs vit_pytorch reference for NAME -->`` binds ``reference`` to the vit-pytorch model
that ``tests/references`` builds for case NAME (a README example of vit-pytorch, with its arguments).
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON, SHELL, CONSOLE = {"python", "py"}, {"sh", "bash", "shell"}, {"console"}
INERT = {"yaml", "yml", "text", "txt", "json", "toml"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*snippet:\s*(?P<text>.*?)\s*-->\s*$")
REFERENCE = re.compile(r"needs vit_pytorch reference for (?P<case>\S+)$")
FILE = re.compile(r"file (?P<name>[\w-]+\.(py|yaml))$")
# rich wraps at 80 columns when stdout is no terminal; the docs show what a wide terminal prints
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}


@dataclass
class Snippet:
    page: Path
    line: int  # of the opening fence, from 1
    lang: str
    code: str
    directives: list[str] = field(default_factory=list)
    after: Snippet | None = None  # the Python block of the page that this one continues

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"


def rel(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def parse(page: Path) -> tuple[list[Snippet], list[str]]:
    """The fenced blocks of a page, and the problems of its fences (unclosed, untagged, unknown tag)."""
    lines, snippets, problems = page.read_text().splitlines(), [], []
    i, last_python = 0, None
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent, fence = i, len(m["indent"]), m["fence"]
        lang = m["info"].strip().split(" ")[0].strip("{}.").lower()
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        i += 1
        while i < len(lines) and not close.match(lines[i]):
            i += 1
        body = [line[indent:] if not line[:indent].strip() else line.lstrip() for line in lines[start + 1:i]]
        directives, prev = [], start - 1
        while prev >= 0 and (not lines[prev].strip() or DIRECTIVE.match(lines[prev])):
            if m := DIRECTIVE.match(lines[prev]):
                directives.insert(0, m["text"])
            prev -= 1
        where = f"{rel(page)}:{start + 1}"
        if i == len(lines):
            problems.append(f"{where}: the fence is never closed")
        elif not lang:
            problems.append(f"{where}: a fence without a language; tag output and other inert text ```text")
        elif lang not in PYTHON | SHELL | CONSOLE | INERT:
            problems.append(f"{where}: unknown language '{lang}' (run: {sorted(PYTHON | SHELL | CONSOLE)}; "
                            f"not run: {sorted(INERT)})")
        snippets.append(Snippet(page, start + 1, lang, "\n".join(body) + "\n", directives))
        if lang in PYTHON:
            snippets[-1].after = last_python if "continues" in directives else None
            last_python = snippets[-1]
        i += 1
    return snippets, problems


PARSED = {page: parse(page) for page in PAGES}
SNIPPETS = [s for page in PAGES for s in PARSED[page][0]]

RUNNABLE = [s for s in SNIPPETS if s.lang in PYTHON | SHELL | CONSOLE]


def test_fences_are_closed_and_tagged():
    problems = [p for page in PAGES for p in PARSED[page][1]]
    assert not problems, "\n".join(problems)


def test_the_snippets_are_found():
    """The extraction is not vacuous: the pages known to hold runnable snippets yield them."""
    for name in ("README.md", "docs/tutorial.md", "docs/format.md"):
        langs = {s.lang for s in SNIPPETS if s.page == ROOT / name}
        assert langs & PYTHON and langs & (SHELL | CONSOLE), f"{name}: no Python or shell snippet found"


def test_directives_are_known():
    wrong = [f"{s.where}: {d}" for s in SNIPPETS for d in s.directives
             if not (s.lang in PYTHON and (REFERENCE.match(d) or d == "continues")
                     or s.lang in PYTHON | {"yaml"} and FILE.match(d))]
    wrong += [f"{s.where}: continues, but no Python block comes before it on its page" for s in SNIPPETS
              if "continues" in s.directives and s.lang in PYTHON and s.after is None]
    assert not wrong, "unknown or misplaced snippet directives:\n" + "\n".join(wrong)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A working directory per page that looks like the repository root: a link to each of its entries.
    Files the snippets write (``--save``) land there, for the page's later snippets to read."""
    dirs: dict[Path, Path] = {}

    def get(page: Path) -> Path:
        if page not in dirs:
            dirs[page] = tmp_path_factory.mktemp(page.stem)
            for entry in ROOT.iterdir():
                if entry.name != ".git":
                    (dirs[page] / entry.name).symlink_to(entry)
        return dirs[page]

    return get


@pytest.mark.parametrize("snippet", RUNNABLE, ids=lambda s: s.where)
def test_snippet(snippet, scratch):
    cwd = scratch(snippet.page)
    write_files(snippet, cwd)
    if snippet.lang in PYTHON:
        run_python(snippet, cwd)
    else:
        run_shell(snippet, cwd)


def write_files(snippet: Snippet, cwd: Path) -> None:
    """The files the page's blocks up to this one are (``file NAME``), in its scratch directory."""
    for earlier in PARSED[snippet.page][0]:
        if earlier.line > snippet.line:
            break
        for d in earlier.directives:
            if m := FILE.match(d):
                target = cwd / m["name"]
                assert not target.is_symlink(), f"{earlier.where}: {m['name']} is an entry of the repository"
                target.write_text(earlier.code)


# -- Python ------------------------------------------------------------------------------------------
RAN: dict[str, tuple[dict, dict]] = {}  # where → (namespace, block registry) after the block ran


def reference_for(snippet: Snippet) -> dict:
    from references import BY_ID

    for d in snippet.directives:
        if m := REFERENCE.match(d):
            assert m["case"] in BY_ID, f"{snippet.where}: no reference case '{m['case']}' in tests/references"
            return {"reference": BY_ID[m["case"]].make()}
    return {}


def run_python(snippet: Snippet, cwd: Path) -> tuple[dict, dict]:
    import torch

    from vitdsl.blocks import REGISTRY

    if snippet.where in RAN:
        return RAN[snippet.where]
    if snippet.after is not None:
        try:  # normally it ran just before; alone (pytest -k), run it now
            namespace, registry = run_python(snippet.after, cwd)
        except AssertionError as e:
            raise AssertionError(f"{snippet.where}: continues {snippet.after.where}, which fails") from e
        namespace = dict(namespace)
    else:
        namespace, registry = {"__name__": "__main__"}, dict(REGISTRY)
    namespace.update(reference_for(snippet))
    # padding the source puts traceback line numbers on the page's own lines
    code = compile("\n" * snippet.line + snippet.code, rel(snippet.page), "exec")
    outside, home = dict(REGISTRY), os.getcwd()
    REGISTRY.clear()
    REGISTRY.update(registry)
    torch.manual_seed(0)
    os.chdir(cwd)
    try:
        exec(code, namespace)
        RAN[snippet.where] = namespace, dict(REGISTRY)
    except Exception as e:
        raise AssertionError(f"{snippet.where}: the Python snippet raised {type(e).__name__}: {e}") from e
    finally:  # blocks a snippet registers stay out of the other tests
        os.chdir(home)
        REGISTRY.clear()
        REGISTRY.update(outside)
    return RAN[snippet.where]


# -- shell -------------------------------------------------------------------------------------------
@dataclass
class Command:
    line: int
    argv: list[str]
    output: list[str] | None  # what a console block shows after it; None: not shown (sh)


def commands(snippet: Snippet) -> list[Command]:
    """The command lines of a block (continuation lines joined), with their documented output."""
    out: list[Command] = []
    pending, first = "", 0
    for k, text in enumerate(snippet.code.splitlines()):
        line = snippet.line + 1 + k
        first = first if pending else line
        if snippet.lang in CONSOLE and not pending:
            if not text.startswith("$ "):
                assert out and out[-1].output is not None, f"{rel(snippet.page)}:{line}: " \
                    "output before the first '$ ' command"
                out[-1].output.append(text)
                continue
            text = text[2:]
        pending += text
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        argv = shlex.split(pending, comments=True)
        pending = ""
        if argv:
            out.append(Command(first, argv, [] if snippet.lang in CONSOLE else None))
    return out


def matches(expected: list[str], actual: str) -> bool:
    """Does the tool's output match the documented one, where '...' stands for any text?"""
    norm = lambda lines: "\n".join(line.rstrip() for line in lines).strip("\n")  # noqa: E731
    pattern = ".*?".join(re.escape(part) for part in norm(expected).split("..."))
    return re.fullmatch(pattern, norm(actual.splitlines()), re.S) is not None


def run_vitdsl(args: list[str], cwd: Path, where: str, expected: list[str] | None = None) -> None:
    shown = f"{where}: vitdsl {shlex.join(args)}"
    run = subprocess.run([sys.executable, "-m", "vitdsl", *args], cwd=cwd, env=ENV, capture_output=True,
                         text=True, timeout=300)
    printed = run.stdout + run.stderr
    status = 2 if expected and expected[0].startswith("error:") else 0
    assert run.returncode == status, f"{shown}\nexited with {run.returncode}, not {status}:\n{printed}"
    if expected:
        assert matches(expected, printed), \
            f"{shown}\nprints what the docs do not show.\n--- documented:\n" + "\n".join(expected) + \
            f"\n--- printed:\n{printed}"


def run_make(target: list[str], cwd: Path, where: str) -> None:
    assert shutil.which("make"), f"{where}: the docs use make, which is not installed here"
    dry = subprocess.run(["make", "-n", *target], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, f"{where}: make -n {shlex.join(target)} fails:\n{dry.stdout}{dry.stderr}"
    for recipe in dry.stdout.splitlines():
        argv = shlex.split(recipe)
        if argv and Path(argv[0]).name == "vitdsl":
            run_vitdsl(argv[1:], cwd, f"{where} (make {shlex.join(target)})")


def run_shell(snippet: Snippet, cwd: Path) -> None:
    found = commands(snippet)
    assert found, f"{snippet.where}: a shell block without a command; tag output ```text"
    for cmd in found:
        where = f"{rel(snippet.page)}:{cmd.line}"
        refused = [t for t in cmd.argv if t in {"|", "||", "&&", ";", "&"} or re.match(r"\d*[<>]", t)]
        assert not refused, f"{where}: shell syntax {refused} is not run by the tests; keep to one command"
        if cmd.argv[0] == "vitdsl":
            run_vitdsl(cmd.argv[1:], cwd, where, cmd.output)
        elif cmd.argv[:3] in (["python", "-m", "vitdsl"], ["python3", "-m", "vitdsl"]):
            run_vitdsl(cmd.argv[3:], cwd, where, cmd.output)
        elif cmd.argv[0] == "make":
            assert not cmd.output, f"{where}: the output of make is not checked; do not quote it"
            run_make(cmd.argv[1:], cwd, where)
        else:
            pytest.fail(f"{where}: '{shlex.join(cmd.argv)}' is not a command the tests run "
                        "(vitdsl, python -m vitdsl, make); if it is output, tag the block ```text")


# -- the extraction itself ---------------------------------------------------------------------------
PAGE = """Text.

<!-- snippet: needs vit_pytorch reference for vit -->

```python
x = 1
```
* a list item:

  ```console
  $ vitdsl validate vit \\
      --set depth=2   # a comment
  ok: ...
  $ vitdsl list
  ```

````text
```python
not code
```
````
~~~
untagged
~~~
```yml
"""


def test_parse_finds_blocks_lines_directives_and_problems(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    snippets, problems = parse(page)
    assert [(s.line, s.lang) for s in snippets] == [(5, "python"), (10, "console"), (17, "text"), (22, ""),
                                                    (25, "yml")]
    assert snippets[0].directives == ["needs vit_pytorch reference for vit"] and snippets[0].code == "x = 1\n"
    assert snippets[2].code == "```python\nnot code\n```\n"
    assert [p.split(": ", 1)[1][:20] for p in problems] == ["a fence without a la", "the fence is never c"]
    cmds = commands(snippets[1])
    assert [(c.line, c.argv, c.output) for c in cmds] == [
        (11, ["vitdsl", "validate", "vit", "--set", "depth=2"], ["ok: ..."]), (14, ["vitdsl", "list"], [])]


def test_output_matching():
    assert matches(["ok: ... ms", "..."], "ok: 12 ms\nmore\nlines\n")
    assert matches(["a  ", "b"], "a\nb\n\n")  # trailing spaces and blank lines do not count
    assert matches(["x: 1, 2, ..."], "x: 1, 2, ...")  # a literal ellipsis matches itself
    assert not matches(["ok: 12 ms"], "ok: 13 ms")
    assert not matches(["a", "b"], "a\nb\nc")  # every line must be shown or elided
    assert not matches(["  hint: x"], "hint: x")  # indentation counts


CHAINED = """```python
from vitdsl.blocks import REGISTRY, BlockSpec

class Probe(BlockSpec):
    \"\"\"Test only.\"\"\"
    block = "snippet-test-probe"

REGISTRY[Probe.block] = Probe
x = 41
```

<!-- snippet: continues -->
```python
assert "snippet-test-probe" in REGISTRY
x += 1
```

```python
from vitdsl.blocks import REGISTRY

assert "x" not in globals() and "snippet-test-probe" not in REGISTRY
```
"""


def test_python_blocks_chain_only_when_told(tmp_path):
    from vitdsl.blocks import REGISTRY

    page = tmp_path / "page.md"
    page.write_text(CHAINED)
    first, second, third = parse(page)[0]
    assert second.after is first and third.after is None
    assert run_python(second, tmp_path)[0]["x"] == 42  # runs the first block too
    run_python(third, tmp_path)
    assert "snippet-test-probe" not in REGISTRY
