"""Property: for mutated zoo blueprints, validate and build agree. Either both refuse with the same located
``VitdslError``, or validate accepts and the model builds on the meta device and runs a forward pass with
outputs of the predicted shapes. ``tools/fuzz_blueprints.py`` runs the same check on many more cases."""
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from fuzz_blueprints import cases, run_case  # noqa: E402

CASES = list(cases(seed=0, count=120, objectives=0.1))
VERDICTS: Counter = Counter()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}:{'+'.join(c.mutations)[:60]}")
def test_validate_accepting_means_build_and_forward_succeed(case):
    verdict, detail = run_case(case)
    VERDICTS[verdict] += 1
    assert verdict in ("ok", "refused"), f"{verdict}: {detail}\n{case.text}"


def test_the_cases_exercise_both_sides():
    if sum(VERDICTS.values()) < len(CASES):  # run alone
        VERDICTS.update(run_case(c)[0] for c in CASES)
    assert VERDICTS["ok"] >= 10 and VERDICTS["refused"] >= 10, VERDICTS
