"""Hostile blueprints from the zoo: seeded, structure-aware mutations, and the check that ``validate``
accepting means ``build`` and a forward pass succeed.

Every case is a zoo blueprint (or hybrid example) with one to three mutations: a parameter, a block field
or an input size set to a value that is out of range, of the wrong type, zero, negative, huge or one off
a divisor; a field a block has added with a value of its type; layer items dropped, duplicated, swapped
or replaced by another block; ``from:`` pointed elsewhere. A case passes when

* validate and build both refuse it with the same ``VitdslError`` that says where (file:line or a block
  path), or
* validate accepts it, build compiles it on the meta device (huge sizes allocate nothing) with as many
  parameters as validate counts, and a forward pass on a meta tensor of the input shape gives outputs of
  the shapes validate predicted.

Anything else (another exception type, a refusal without a location, validate and build disagreeing)
is a finding. Run by hand for longer than the test does::

    python tools/fuzz_blueprints.py --cases 10000 --seed 3
"""
from __future__ import annotations

import argparse
import copy
import random
import signal
import sys
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402
from fuzz_mutations import MUTATIONS, SETTINGS, block_pool, corpus, m_objective, m_param, objective_corpus  # noqa: E402

# objectives whose forward runs on meta tensors of the encoder's input alone (MPP's masking needs values,
# distillation takes labels too)
FORWARD_OBJECTIVES = ("mae", "mp3", "simmim", "esvit", "dino")


@dataclass
class Case:
    name: str
    variant: str | None
    mutations: list[str]
    data: dict

    @property
    def text(self) -> str:
        return yaml.safe_dump(self.data, sort_keys=False, default_flow_style=None, width=120)


def cases(seed: int, count: int, zoo: dict[str, dict] | None = None, objectives: float = 0.0):
    """``count`` cases, the same for the same seed; a share ``objectives`` of them mutate objective blueprints."""
    zoo = zoo or corpus()
    pool = block_pool(zoo)
    rng = random.Random(seed)
    names = sorted(zoo)
    goals = objective_corpus() if objectives else {}
    for _ in range(count):
        if goals and rng.random() < objectives:
            name = rng.choice(sorted(goals))
            data = copy.deepcopy(goals[name])
            ops = [(m_objective, 4), (m_param, 1)]
        else:
            name = rng.choice(names)
            data = copy.deepcopy(zoo[name])
            ops = MUTATIONS
        done = []
        for _ in range(rng.choice([1, 2, 2, 3, 4])):
            op = rng.choices([m for m, _ in ops], [w for _, w in ops])[0]
            what = op(rng, data, pool)
            if what:
                done.append(what)
        variants = sorted(data.get("variants") or {})
        variant = rng.choice(variants) if variants and rng.random() < 0.25 else None
        yield Case(name, variant, done, data)


def run_case(case: Case) -> tuple[str, str]:
    """('ok' | 'refused', '') when the case passes, else (finding class, detail)."""
    import torch

    import vitdsl
    from vitdsl.errors import VitdslError

    def attempt(what):
        try:
            return what(), None
        except VitdslError as e:
            return None, e

    text = case.text
    try:
        graph, v_err = attempt(lambda: vitdsl.validate(vitdsl.loads(text, f"{case.name}.yaml"), case.variant))
    except Exception as e:  # noqa: BLE001 - what the fuzzer is looking for
        return "crash in validate", _where(e)
    try:
        with warnings.catch_warnings():  # an empty weight is a size validate should have refused
            warnings.filterwarnings("error", message="Initializing zero-element tensors")
            model, b_err = attempt(lambda: vitdsl.build(vitdsl.loads(text, f"{case.name}.yaml"), case.variant,
                                                        device="meta"))
    except UserWarning as e:
        return "validate ok, build made an empty tensor", _where(e)
    except Exception as e:  # noqa: BLE001
        return ("crash in build" if v_err else "validate ok, build crashed"), _where(e)
    if v_err is not None:
        if b_err is None or str(b_err) != str(v_err):
            return "validate and build refuse differently", f"{v_err} | {b_err}"
        if v_err.location is None and not v_err.path:
            return "refusal without a location", str(v_err)
        return "refused", ""
    if b_err is not None:
        return "validate ok, build refused", str(b_err)
    if not hasattr(graph, "nx"):  # an objective: its loss on a meta batch, where that needs nothing else
        if next(iter(case.data["objective"])) not in FORWARD_OBJECTIVES:
            return "ok", ""
        try:
            with torch.no_grad():
                model(torch.empty(2, *graph.encoder.input.dims, device="meta"))
        except Exception as e:  # noqa: BLE001
            return "validate ok, objective forward failed", _where(e)
        return "ok", ""
    from vitdsl.graph.build import info

    counted = info(graph)["params"]
    built = sum(p.numel() for p in model.parameters())
    if counted != built:
        return "parameter rule differs from the module", f"validate counts {counted:,}, the model holds {built:,}"
    try:
        model.eval()
        with torch.no_grad():
            out = model(torch.empty(graph.input.batched(2), device="meta"))
    except Exception as e:  # noqa: BLE001
        return "validate ok, forward failed", _where(e)
    outs = out if isinstance(out, tuple) else (out,)
    bounded = any(node.spec.data_dependent() for node, _, _ in graph)
    for got, want in zip(outs, graph.outputs):
        got = tuple(got.shape)
        want = want.batched(2)
        if len(got) != len(want) or (got != want and not (bounded and all(a <= b for a, b in zip(got, want)))):
            return "forward shape differs from validate", f"{got} != {want}"
    return "ok", ""


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    last = next((f for f in reversed(frames) if "vitdsl" in f.filename), frames[-1] if frames else None)
    at = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}{at}"


class _Slow(BaseException):  # not an Exception, so that run_case does not take it for a crash
    pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per case before it counts as a finding")
    ap.add_argument("--show", type=int, default=3, help="cases to print per finding class")
    ap.add_argument("--objectives", type=float, default=0.1, help="share of cases that mutate objective blueprints")
    ap.add_argument("--save", type=Path, help="write each finding's blueprint to this folder")
    ap.add_argument("--hostile", type=float, default=SETTINGS["hostile"],
                    help="how often a mutated value is of the wrong type, infinite or huge")
    args = ap.parse_args(argv)
    SETTINGS["hostile"] = args.hostile

    def alarm(*_):
        raise _Slow()

    signal.signal(signal.SIGALRM, alarm)
    tally: Counter = Counter()
    shown: dict[str, list] = {}
    start = time.time()
    for n, case in enumerate(cases(args.seed, args.cases, objectives=args.objectives)):
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            verdict, detail = run_case(case)
        except _Slow:
            verdict, detail = "slower than the timeout", ""
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        tally[verdict] += 1
        if verdict not in ("ok", "refused"):
            key = f"{verdict}: {detail.split(' at ')[-1] if ' at ' in detail else detail[:80]}"
            shown.setdefault(key, []).append((n, case, detail))
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                (args.save / f"case{n}.yaml").write_text(f"# {case.name} {case.variant} {case.mutations}\n"
                                                         f"# {verdict}: {detail}\n" + case.text)
    print(f"{args.cases} cases (seed {args.seed}) in {time.time() - start:.0f}s: {dict(tally)}")
    for key, found in sorted(shown.items(), key=lambda kv: -len(kv[1])):
        print(f"\n[{len(found)}] {key}")
        for n, case, detail in found[:args.show]:
            print(f"  case {n}: {case.name} variant={case.variant} {case.mutations}\n    {detail}")
    return 1 if shown else 0


if __name__ == "__main__":
    sys.exit(main())
