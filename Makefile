PYTHON ?= python3
TORCH_PIN ?= torch==2.13.0

.PHONY: install demo test test-slow lint bench reproduce

install:
	$(PYTHON) -m pip install --quiet $(TORCH_PIN)
	$(PYTHON) -m pip install --quiet -e ".[test,ray]"
	# CIDEr-D reference for the tests (its scorer needs only numpy; skip its heavy optional deps)
	$(PYTHON) -m pip install --quiet --no-deps pycocoevalcap

demo: install
	$(PYTHON) -m searnn.cli train --config configs/ocr/mle.yaml --run-dir runs/demo
	$(PYTHON) -m searnn.cli report runs/demo

test: install
	$(PYTHON) -m pytest -q
	# a regular install: build the wheel, install it in a fresh venv, train one OCR epoch from another folder
	$(PYTHON) -m pytest -q -m wheel tests/test_packaging.py

test-slow: install
	$(PYTHON) -m pytest -q -m slow

lint:
	ruff check src tests benchmarks

bench: install
	$(PYTHON) benchmarks/bench_searnn_speed.py

# seed 1 of every README headline row with today's code, checked against the stated figures
# (about 9.3 core-hours, 4.7 hours on 2 cores; configs/experiments/headlines.yaml, RESULTS-headlines.json)
reproduce: install
	$(PYTHON) -m searnn.cli experiment configs/experiments/headlines.yaml --jobs 2
	$(PYTHON) -m searnn.cli report runs/headlines --against RESULTS-headlines.json
