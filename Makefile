# The two set-up commands of the README, plus the demo. Everything runs inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test demo lint clean

setup:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/medrag server install

test: lint
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check .

demo:
	$(BIN)/medrag demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
