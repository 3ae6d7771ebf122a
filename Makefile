# The README's two commands: `make train` (the main job) and `make test` (the test suite); `make tensorboard` to look.
# Both create .venv on first use and refresh it when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.segattn-installed
ARGS ?=

.PHONY: install train test lint format tensorboard benchmark clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# data.download=auto: on the first run, fetch Oxford-IIIT Pet into data/ (torchvision) when it is missing.
train: $(STAMP)
	$(PY) train.py experiment=pets_binary data.download=auto $(ARGS)

# ruff: lint and formatting (configured in pyproject.toml); `make format` rewrites the files.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Curves, HParams and figures of every run under logs/ (http://localhost:6006).
tensorboard: $(STAMP)
	$(VENV)/bin/tensorboard --logdir logs $(ARGS)

# pytest exits 5 when it collects no test; that is reported, not treated as a failure.
test: $(STAMP)
	$(PY) -m pytest -q $(ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# Speed/memory tables (BENCHMARKS.md); the quality tables (benchmarks/quality.py) need SEGATTN_DATA_DIR and take hours on a CPU.
benchmark: $(STAMP)
	$(PY) benchmarks/attention.py --output logs/benchmarks/attention.md
	$(PY) benchmarks/model.py --output logs/benchmarks/model.md

clean-venv:
	rm -rf $(VENV)
