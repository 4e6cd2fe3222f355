# make demo — set up .venv and print the MaxViT summary; make test — set up and run the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
# The reference implementations are test-only oracles; they import torchvision, which the tests stub.
ORACLES := vit-pytorch==1.26.11 timm==1.0.31

.PHONY: demo test timm-sweep docs docs-site bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e ".[test]"
	$(PIP) install -q --no-deps $(ORACLES)
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/vitdsl build blueprints/maxvit.yaml

# one worker per core (pytest-xdist): the suite is mostly single-threaded Python
test: $(VENV)/.test-installed
	$(PY) -m pytest -n 2

# every timm model the zoo reproduces, outputs compared (large models too: minutes, several GiB)
timm-sweep: $(VENV)/.test-installed
	$(PY) -m pytest -m sweep tests/test_timm_sweep.py --junitxml=timm-sweep.xml

docs: $(VENV)/.installed
	$(PY) tools/docgen.py

# the docs as a website (mkdocs.yml) in site/; `$(VENV)/bin/mkdocs serve` previews it at localhost:8000
docs-site: $(VENV)/.test-installed
	$(VENV)/bin/mkdocs build --strict

bench: $(VENV)/.test-installed
	$(PY) benchmarks/forward.py
	$(PY) benchmarks/versus_timm.py
	$(PY) benchmarks/gemm_ceiling.py
	$(PY) benchmarks/tool.py

clean:
	rm -rf $(VENV) .pytest_cache site
