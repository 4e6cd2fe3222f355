"""The ``vitdsl`` command: a thin layer over the public API.

Every user error (a bad blueprint, a wrong option) is printed as one message — where, what, how to
fix it — and exits with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import codecs
import gc
import json
import os
import sys
import time
import warnings
from pathlib import Path

from . import cli_diff, cli_graph, cli_sweep, cli_weights
from .errors import VitdslError, safe_text

EPILOG = ("PATH_OR_NAME is a blueprint file, a zoo name (see 'vitdsl list') or a checkpoint written by "
          "'vitdsl build --save' (recognised by its content, whatever its suffix).")


PLUGIN_HELP = ("import a Python file or module that registers blocks of your own (vitdsl.register_block) "
               "before loading the blueprint (repeatable); a blueprint itself never runs code")


def _add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("blueprint", metavar="PATH_OR_NAME", help="blueprint file, zoo name (e.g. maxvit) or checkpoint")
    p.add_argument("--variant", "-v", metavar="V", help="a named variant of the blueprint (e.g. a model size)")
    p.add_argument("--compat", metavar="OVERLAY", help="the compatibility overlay: none (the papers' block "
                   "defaults) or vit-pytorch; by default the one the blueprint's variant chooses")
    p.add_argument("--set", "-s", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a parameter; the value is read as YAML (repeatable), e.g. --set classes=10")
    p.add_argument("--replace", "-r", dest="replacements", metavar="NAME=ITEM", action="append", default=[],
                   help="replace every layer item named NAME by ITEM, read as YAML; it keeps the item's name, "
                        "from and when (repeatable), e.g. --replace ff='{mlp: {mult: 2}}'")
    _add_files(p)


def _add_files(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-path", dest="allow_paths", metavar="DIR", action="append", default=[],
                   help="also let the blueprint name files (extends, encoder, teacher) in DIR; by default only "
                        "the zoo, the working directory and the blueprint's own folder (repeatable)")
    p.add_argument("--plugin", dest="plugins", metavar="FILE_OR_MODULE", action="append", default=[],
                   help=PLUGIN_HELP)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vitdsl", description="Design vision transformers as blueprints: "
                                  "validate them, summarise them, build them into PyTorch modules.",
                                  epilog="Run 'vitdsl COMMAND --help' for the options of a command.")
    top.add_argument("--version", action="version", version=_version())
    top.add_argument("--plugin", dest="global_plugins", metavar="FILE_OR_MODULE", action="append", default=[],
                     help=PLUGIN_HELP)
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("build", help="validate, build the model and print its shape-traced summary",
                       description="Validate a blueprint, instantiate the model (with real weights) and print "
                                   "its shape-traced summary.", epilog=EPILOG)
    _add_target(p)
    p.add_argument("--batch", type=int, default=1, help="batch size for the traced shapes (default 1)")
    p.add_argument("--save", metavar="FILE", help="save the initialised weights with the blueprint to FILE")
    p.add_argument("--seed", type=int, metavar="N", help="seed the initial weights: the same blueprint and seed "
                                                         "give the same weights")
    p.add_argument("--expand", action="store_true", help="show every repeat iteration instead of folding "
                                                         "identical ones")
    p.add_argument("--skip-memory-check", action="store_true",
                   help="build even when the weights, estimated from the shape rules, exceed the memory available")
    cli_weights.add_weights_options(p)

    p = sub.add_parser("summary", help="print the shape-traced summary without allocating weights",
                       description="Trace a blueprint on the meta device (no weights are allocated, so any "
                                   "size works) and print every block's shapes, parameters, FLOPs and the "
                                   "activations it keeps for backward, then the totals: FLOPs and MACs, weight "
                                   "memory and a training-memory estimate for the batch.",
                       epilog=EPILOG)
    _add_target(p)
    p.add_argument("--batch", type=int, default=1, help="batch size for the traced shapes and the memory "
                                                        "estimates (default 1)")
    p.add_argument("--expand", action="store_true", help="show every repeat iteration")
    p.add_argument("--json", action="store_true", help="print the summary (or the sweep) as JSON")
    cli_sweep.add_sweep(p)

    p = sub.add_parser("validate", help="check a blueprint completely, without torch",
                       description="Check schema, wiring and every shape rule of a blueprint without importing "
                                   "torch, and list the square input sizes that work.", epilog=EPILOG)
    _add_target(p)

    cli_graph.add_graph(sub, _add_target)
    cli_weights.add_verify(sub)
    cli_diff.add_diff(sub, _add_files)

    p = sub.add_parser("list", help="list the zoo", description="List the blueprints of the zoo, and the "
                                                                "hybrids in examples/, with a one-line description "
                                                                "and parameter count, then the objective blueprints "
                                                                "in objectives/.")
    p.add_argument("--names", action="store_true", help="print names only, one per line")

    p = sub.add_parser("schema", help="print the JSON Schema of the blueprint format",
                       description="Print the JSON Schema of the blueprint format (for editor completion "
                                   "and validation of YAML files), with the blocks of installed packages and "
                                   "--plugin files. The package ships the library's own as a file (--path).")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--path", action="store_true", help="print where the schema file shipped with vitdsl is")
    return top


def _version() -> str:
    from . import __version__

    return f"vitdsl {__version__}"


def _overrides(items: list[str]) -> dict:
    from .blueprint.load import parse_override

    return dict(parse_override(s) for s in items)


def _replacements(items: list[str]) -> dict:
    from .blueprint.load import parse_replace

    return dict(parse_replace(s) for s in items)


def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
        console = Console(stderr=stderr, highlight=False, width=160)
    console.on_broken_pipe = _reader_gone  # rich would exit with status 1; main ends every command alike
    return console


def _reader_gone():
    raise BrokenPipeError


def cmd_validate(args) -> int:
    start = time.perf_counter()
    bp = _blueprint(args)
    head, *lines = bp.report(bp.check())
    took = time.perf_counter() - start
    print(f"ok: {safe_text(bp.name)}{f' ({args.variant})' if args.variant else ''} — {head}")
    for line in lines:
        print(line)
    print(f"  checked in {took * 1000:.0f} ms")
    return 0


def _checkpoint_file(target: str) -> Path | None:
    """The checkpoint named on the command line, or None for a blueprint file or zoo name. Decided by the
    file's first bytes: a checkpoint called model.yaml is still one, and binary files are never parsed
    as YAML."""
    from .checkpoint import HINT_SAVE, looks_like_checkpoint

    path = Path(target)
    if not path.is_file():
        return None
    if looks_like_checkpoint(path):
        return path
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None  # the blueprint reader says why
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        text = b"\0" not in head
    except UnicodeDecodeError:
        text = False
    if not text:
        raise VitdslError(f"'{path}' is neither a blueprint (YAML text) nor a vitdsl checkpoint",
                          hint=f"a blueprint is a UTF-8 YAML file; {HINT_SAVE}")
    return None


def _noting(call, *args):
    """``call(*args)``, printing its warnings (an unverified old checkpoint) as notes, not as Python's
    file:line warning lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call(*args)
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)
    return result


def _blueprint(args):
    """The blueprint named on the command line (from a file, the zoo or a checkpoint), with the variant,
    overrides and replacements applied."""
    from . import load
    from .checkpoint import read

    path = _checkpoint_file(args.blueprint)
    target = args.blueprint if path is None else _noting(read, path).blueprint
    return load(target, args.variant, _overrides(args.overrides), _replacements(args.replacements),
                allow_paths=args.allow_paths, compat=args.compat)


def _build_checkpoint(args, path: Path):
    """The model of a checkpoint, weights loaded; nothing on the command line may change it."""
    from . import load_checkpoint

    changes = [flag for flag, given in (("--variant", args.variant), ("--compat", args.compat),
                                        ("--set", args.overrides), ("--replace", args.replacements),
                                        ("--seed", args.seed is not None), ("--weights", args.weights))
               if given]
    if changes:
        raise VitdslError(f"{', '.join(changes)} cannot change a checkpoint: its weights fit its own blueprint",
                          hint=f"'vitdsl summary {path} {changes[0]} ...' shows the changed design without weights")
    return _noting(load_checkpoint, path)


def cmd_summary(args, build: bool = False) -> int:
    from . import summary

    if args.batch < 1:
        raise VitdslError(f"--batch must be at least 1, got {args.batch}")
    path = _checkpoint_file(args.blueprint) if build else None
    if path is not None:
        model = _build_checkpoint(args, path)
        bp = model.blueprint
    else:
        bp = _blueprint(args)
    if getattr(args, "sweep", None) is not None:
        return cli_sweep.cmd_sweep(args, bp, _console())
    if build:
        from . import build as build_model

        if path is None:
            model = build_model(bp, seed=args.seed, check_memory=not args.skip_memory_check)
        if args.weights:
            cli_weights.load_weights(model, args.weights, args.keys, _console())
        if args.save:
            from . import save

            try:
                save(model, args.save)
            except OSError as e:
                raise VitdslError(f"cannot write '{args.save}': {e.strerror or e}") from None
    s = summary(bp, batch=args.batch)
    if getattr(args, "json", False):
        print(json.dumps(s.to_dict(), indent=2))
        return 0
    console = _console()
    for part in s.render(folded=not args.expand):
        console.print(part)
    if build and args.save:
        console.print(f"saved weights and blueprint to {args.save}")
    return 0


def cmd_list(args) -> int:
    from rich.table import Table

    from .blueprint.load import objective_names, zoo_names
    from .listing import zoo_rows

    if args.names:
        print("\n".join(zoo_names(examples=True) + objective_names()))
        return 0
    # what a plugin does is not part of the cache's key: with one loaded, every blueprint is validated afresh
    plain, objectives = zoo_rows(cached=not args.global_plugins)
    console = _console()
    for title, rows in (("The vitdsl zoo", plain),
                        ("Objectives (the loss around an encoder; parameters trained)", objectives)):
        table = Table(title=title, title_justify="left", header_style="bold")
        for col, kw in (("Name", {}), ("Params", {"justify": "right"}), ("Description", {})):
            table.add_column(col, **kw)
        for name, params, description in rows:
            table.add_row(name, f"{params:,}", description)
        console.print(table)
    return 0


def cmd_schema(args) -> int:
    from .schema import SHIPPED, blueprint_schema, schema_text

    if args.path:
        print(SHIPPED)
        return 0
    text = schema_text(blueprint_schema())
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as e:
            raise VitdslError(f"cannot write '{args.output}': {e.strerror or e}") from None
    else:
        sys.stdout.write(text)
    return 0


def render_error(e: VitdslError) -> str:
    """The message, with the offending source line and a caret when the line is one of a blueprint read;
    whatever came from the blueprint is shown with control characters escaped."""
    from .blueprint.source import quoted_line
    from .errors import clip

    text = f"error: {e.format()}"
    loc = e.location
    line = quoted_line(loc.file, loc.line) if loc is not None else None
    if line is None:
        return text
    if len(line) > 200:  # a long line is shown around the caret
        start = max(0, loc.col - 100)
        line, col = ("…" if start else "") + clip(line[start:], 200), loc.col - start + (1 if start else 0)
    else:
        col = loc.col
    gutter = f"{loc.line:>5} | "
    head, _, hint = text.partition("\n  hint: ")
    snippet = f"{gutter}{safe_text(line, keep_newlines=False)}\n{' ' * (len(gutter) - 2)}| {' ' * (col - 1)}^"
    return f"{head}\n{snippet}" + (f"\n  hint: {hint}" if hint else "")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {"build": lambda a: cmd_summary(a, build=True), "summary": cmd_summary,
                "validate": cmd_validate, "list": cmd_list, "schema": cmd_schema,
                "diff": lambda a: cli_diff.cmd_diff(a, _overrides, _console()),
                "graph": lambda a: cli_graph.cmd_graph(a, _blueprint(a)),
                "verify": lambda a: cli_weights.cmd_verify(a, _overrides(a.overrides), _overrides(a.reference_args),
                                                           _console())}
    # validate and list are over in a moment: the collector need not scan what the imports made again, nor
    # everything once more as the interpreter exits (together a third of validate's time), nor, while they
    # run, the modules, classes and functions that their own imports (networkx, the blocks) make by the
    # hundred thousand, all of which live to the end: it runs after 200k allocations, not 700 (validate 17 ms
    # faster of ~300). Called without arguments, main is the program (the console script, python -m vitdsl)
    # and the process ends after it; a caller that passes them runs on, so the collector is thawed and reset
    # for it.
    frozen = args.command in ("validate", "list")
    threshold = gc.get_threshold()
    if frozen:
        gc.freeze()
        gc.set_threshold(200_000, *threshold[1:])
    try:
        from .blocks.plugins import load_plugin

        for plugin in args.global_plugins + getattr(args, "plugins", []):
            load_plugin(plugin)
        return commands[args.command](args)
    except VitdslError as e:
        print(render_error(e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader stopped reading (| head): not an error; quiet the final flush too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print("error: out of memory", file=sys.stderr)
        return 2
    except Exception as e:  # a bug of ours, not a mistake of the user's: say so, briefly
        if os.environ.get("VITDSL_TRACEBACK"):
            raise
        from .errors import clip

        print(f"internal error: {type(e).__name__}: {safe_text(clip(str(e), 300))}\n"
              "  this is a bug in vitdsl, not in your blueprint; please report it with the blueprint "
              "(set VITDSL_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 3
    finally:
        if frozen and argv is not None:
            gc.unfreeze()
            gc.set_threshold(*threshold)
        elif frozen:
            gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
