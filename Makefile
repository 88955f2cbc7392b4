# make demo: set up and run the main job on the embedded synthetic dataset.
# make demo-transfer: pre-train on one synthetic domain, fine-tune on another with/without PTL.
# make test: set up and run the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo demo-transfer test test-slow lint clean

setup: $(STAMP)

# A virtual environment in the repo with reidbox installed editable; redone when setup.py changes.
$(STAMP): setup.py requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=23" >/dev/null
	$(PY) -m pip install -c requirements/constraints.txt -e ".[dev]"
	$(PY) -c "import torch, torchvision.ops; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo.py --output-dir output/demo

demo-transfer: $(STAMP)
	$(PY) tools/demo.py --transfer --output-dir output/demo/transfer

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check reidbox tools tests benchmarks
	$(VENV)/bin/ruff format --check reidbox tools tests benchmarks

clean:
	rm -rf $(VENV) output
