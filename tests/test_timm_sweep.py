"""The full family sweep (``make timm-sweep``, not in the default run: it builds every model timm registers for
the zoo's families, the large ones too): every name ``vitdsl.interop.timm.names()`` lists gives timm's outputs
after importing timm's re-drawn weights. The default run checks the small models of each family and every
model's parameter count (tests/test_timm_*.py)."""
import pytest
from timm_oracle import TOLERANCE, difference

import vitdsl.interop.timm as vt

pytestmark = pytest.mark.sweep


@pytest.mark.parametrize("name", vt.names())
def test_every_model_is_timms_exactly(name, record_property):
    measured = difference(name)
    record_property("max_abs_difference", measured)  # the figure per model: `--junitxml` keeps it
    assert measured < TOLERANCE
