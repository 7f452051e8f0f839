# tf_usaug: one command to install, one to run the demo, one to test.
#   make demo   installs everything into .venv, trains the small classifier on the bundled demo
#               data, then augments the demo data with that classifier's relevance
#   make test   installs everything into .venv, then runs the test suite
# Both are idempotent: the install is skipped while its stamp is newer than setup.cfg.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.stamp-install
HVD_STAMP := $(VENV)/.stamp-horovod
DEMO_OUT ?= usaug_out
DEMO_CLASSIFIER ?= usaug_classifier
PYTEST_ARGS ?=

# Horovod: TensorFlow + Gloo, no MPI/PyTorch/MXNet. NCCL is used automatically when CUDA
# is found at build time (GPU nodes); on CPU machines it builds without it.
HOROVOD_ENV := HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
               HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
               CMAKE_POLICY_VERSION_MINIMUM=3.5

.PHONY: install demo test test-slow test-all bench check-tools clean

install: $(HVD_STAMP)

check-tools:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found. tf_usaug needs Python 3.11 (innvestigate 2.1.2 and TF 2.14 do not support 3.12)." >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "error: $(PYTHON) is not Python 3.11." >&2; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PYTHON) lacks venv/ensurepip (Debian: apt-get install python3.11-venv)." >&2; exit 1; }
	@command -v cmake >/dev/null 2>&1 || { echo "error: cmake not found; Horovod is built from source (Debian: apt-get install cmake)." >&2; exit 1; }
	@command -v g++ >/dev/null 2>&1 || { echo "error: g++ not found; Horovod is built from source (Debian: apt-get install g++)." >&2; exit 1; }

$(STAMP): setup.cfg pyproject.toml | check-tools
	@echo "==> creating virtual environment $(VENV) with $(PYTHON)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "==> installing tf_usaug and its pinned stack (TensorFlow 2.14.1, innvestigate 2.1.2, ...)"
	$(PIP) install -q --upgrade pip wheel setuptools
	$(PIP) install -q -e '.[test]'
	@touch $@

$(HVD_STAMP): $(STAMP)
	@echo "==> building Horovod 0.28.1 from source against TensorFlow (TF + Gloo; about 2 minutes)"
	$(HOROVOD_ENV) $(PIP) install -q --no-build-isolation --no-cache-dir horovod==0.28.1
	@echo "==> checking the Horovod build (horovodrun --check-build)"
	@out=$$(TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/horovodrun --check-build 2>&1); \
	  echo "$$out" | sed -n '/^Horovod v/,$$p'; \
	  echo "$$out" | grep -q '\[X\] TensorFlow' || { echo "error: Horovod was built without TensorFlow" >&2; exit 1; }; \
	  echo "$$out" | grep -q '\[X\] Gloo' || { echo "error: Horovod was built without Gloo" >&2; exit 1; }
	@touch $@

demo: install
	@echo "==> training the small classifier on the bundled demo data into $(DEMO_CLASSIFIER)/"
	$(PY) -m tf_usaug.train classifier --data tf_usaug/demo_data --backbone small --size 64 \
	  --out $(DEMO_CLASSIFIER) --resume
	@echo "==> augmenting the bundled demo data into $(DEMO_OUT)/ (relevance: that classifier)"
	$(PY) -m tf_usaug.augment --demo --relevance-model $(DEMO_CLASSIFIER) --out $(DEMO_OUT)

test: install
	@echo "==> running the test suite (slow tests: make test-slow)"
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/srad_throughput.py
	$(PY) benchmarks/nst_throughput.py
	$(PY) benchmarks/strong_scaling.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(DEMO_CLASSIFIER) .pytest_cache build *.egg-info
