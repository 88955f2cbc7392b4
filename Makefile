# make demo: set up and run the main job on the embedded synthetic dataset.
# make demo-transfer: pre-train on one synthetic domain, fine-tune on another with/without PTL.
# make test: set up and run the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Which torch build `make setup` installs. cuda (default): PyPI's wheels, which on Linux carry the
# CUDA runtime (about 2.5 GB of downloads; they run on CPU-only machines too). cpu: the CPU-only
# builds from PyTorch's own index (about 0.2 GB), torch AND torchvision from there, since PyPI's
# torchvision is compiled against PyPI's CUDA torch: `make setup TORCH=cpu`.
TORCH ?= cuda
ifeq ($(filter $(TORCH),cuda cpu),)
$(error TORCH must be cuda or cpu, not '$(TORCH)')
endif
CONSTRAINTS_cuda := requirements/constraints.txt
CONSTRAINTS_cpu := requirements/constraints-cpu.txt
INDEX_cuda :=
INDEX_cpu := --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
CONSTRAINTS := $(CONSTRAINTS_$(TORCH))
# A venv set up with the other build is redone (an old stamp without a build name is cuda).
ifneq ($(wildcard $(STAMP)),)
ifneq ($(or $(shell cat $(STAMP)),cuda),$(TORCH))
.PHONY: $(STAMP)
endif
endif

.PHONY: setup demo demo-transfer test test-slow lint clean

setup: $(STAMP)

# A virtual environment in the repo with reidbox installed editable; redone when setup.py, the
# constraints or TORCH change. The stamp records which torch build it holds.
$(STAMP): setup.py $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "pip>=23" >/dev/null
	$(PY) -m pip install $(INDEX_$(TORCH)) -c $(CONSTRAINTS) -e ".[dev]"
	$(PY) -c "import torch, torchvision.ops; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'CUDA', torch.version.cuda)"
	echo $(TORCH) > $(STAMP)

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
