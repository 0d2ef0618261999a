# seg: the two set-up commands are `make demo` and `make test`; both install what they need first.
PYTHON ?= python3
# torch is installed first, only when missing: PyPI's build for this machine (CUDA on a GPU box).
TORCH ?= torch==2.13.0
SEG := $(PYTHON) -m segmentation
# the repository, so that `make -f path/to/Makefile ...` works from any folder (runs and data land there)
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

.PHONY: install demo test test-unit test-fast test-floors lint tensorboard resume batch1 batch2 batch3 batch-smoke static-vs-dynamic dynamic-lr-claim clean

GPUS ?= 1
TEST_WORKERS ?= 2  # pytest-xdist processes (most tests wait on one core: imports, child processes)
# batches: ARCHS, EPOCHS (50), SCHEDULER (reduce_on_plateau), DATA (the dataset's folder), GPUS (> 1: DDP),
# FRESH=1 (start every run anew; default: the same command again continues the batch's unfinished runs),
# PARALLEL=N (N runs at once on this machine, each its own GPUs), SLURM="--time 24:00:00 ..." (one SLURM job array)
BATCH = $(SEG) batch --archs $(or $(ARCHS),unet segresnet) --epochs $(or $(EPOCHS),50) \
	--schedulers $(or $(SCHEDULER),reduce_on_plateau) --gpus $(GPUS) $(if $(FRESH),--fresh) \
	$(if $(PARALLEL),--launcher local --parallel $(PARALLEL)) $(if $(SLURM),--launcher slurm $(SLURM))
SMOKE = data/smoke
SMOKE_FRAGMENT = $(ROOT)/configs/fragments/smoke.yaml

install: .installed

.installed: pyproject.toml
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "$(TORCH)"
	$(PYTHON) -m pip install -e "$(ROOT)[dev,export]"  # export: onnx + onnxruntime (seg export --format onnx, tested)
	touch .installed

demo: .installed  ## train on the synthetic demo task (written to data/demo first, when it is not there)
	test -f data/demo/dataset.json || $(SEG) synth demo --out data/demo
	$(SEG) fit --config $(ROOT)/configs/demo.yaml

test: .installed  ## the whole test suite (what CI runs), TEST_WORKERS (2) processes; the 10 slowest are listed
	cd $(ROOT) && $(PYTHON) -m pytest -q -n $(TEST_WORKERS)

test-unit: .installed  ## pure logic only (no Trainer, no subprocess): seconds
	cd $(ROOT) && $(PYTHON) -m pytest -q -m unit

test-fast: .installed  ## the inner loop: everything but the tests marked slow
	cd $(ROOT) && $(PYTHON) -m pytest -q -n $(TEST_WORKERS) -m "not slow"

lint: .installed  ## ruff (style, imports, docstrings) and mypy (types, explicit @override)
	cd $(ROOT) && $(PYTHON) -m ruff check segmentation tests benchmarks && $(PYTHON) -m mypy

# the lowest MONAI and Lightning that pyproject.toml admits (tests/test_packaging.py keeps the two in step)
FLOORS = monai==1.6.0 lightning==2.6.1
test-floors: .installed  ## the unit tier and the fast end-to-end checks again with the version floors of MONAI and Lightning
	$(PYTHON) -m venv $(ROOT)/.floors
	# the environment's packages (seg's editable install included) come after the floors' own
	$(PYTHON) -c "import sysconfig; print(f'import site; site.addsitedir({sysconfig.get_paths()[\"purelib\"]!r})')" \
		> "$$($(ROOT)/.floors/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/parent.pth"
	$(ROOT)/.floors/bin/python -m pip install -q $(FLOORS)
	cd $(ROOT) && .floors/bin/python -m pytest -q -n $(TEST_WORKERS) -m "unit or floors"

resume: .installed  ## continue RUN (a run directory) from its newest good checkpoint to EPOCHS [SCHEDULER=...]
	@test -n "$(RUN)" || { echo "usage: make resume RUN=lightning_logs/<run>/version_N EPOCHS=100 [SCHEDULER=reduce_on_plateau]"; exit 2; }
	$(SEG) fit --ckpt_path "$(RUN)" --trainer.max_epochs $(or $(EPOCHS),100) $(if $(SCHEDULER),--model.scheduler $(SCHEDULER))

batch1: .installed  ## BraTS: each of ARCHS for EPOCHS with SCHEDULER, a checkpoint every epoch
	$(BATCH) --name batch1 --config $(ROOT)/configs/brats.yaml --data $(or $(DATA),data/brats)

batch2: .installed  ## MSD Task03 Liver
	$(BATCH) --name batch2 --config $(ROOT)/configs/msd_liver.yaml --data $(or $(DATA),data/Task03_Liver)

batch3: .installed  ## TotalSegmentator
	$(BATCH) --name batch3 --config $(ROOT)/configs/totalseg.yaml --data $(or $(DATA),data/totalseg)

batch-smoke: .installed  ## the three batches on synthetic data, tiny networks, 2 epochs
	test -f $(SMOKE)/brats/BraTS2021_00000/BraTS2021_00000_seg.nii.gz || $(SEG) synth brats --out $(SMOKE)/brats --cases 4 --shape 32 32 32
	test -f $(SMOKE)/liver/dataset.json || $(SEG) synth msd --out $(SMOKE)/liver --cases 4 --shape 64 64 32
	test -f $(SMOKE)/totalseg/meta.csv || $(SEG) synth totalseg --out $(SMOKE)/totalseg --cases 4 --shape 32 32 32
	$(SEG) batch --smoke --epochs 2 --name smoke1 --config $(ROOT)/configs/brats.yaml --config $(SMOKE_FRAGMENT) --data $(SMOKE)/brats
	$(SEG) batch --smoke --epochs 2 --name smoke2 --config $(ROOT)/configs/msd_liver.yaml --config $(SMOKE_FRAGMENT) --data $(SMOKE)/liver
	$(SEG) batch --smoke --epochs 2 --name smoke3 --config $(ROOT)/configs/totalseg.yaml --config $(SMOKE_FRAGMENT) --data $(SMOKE)/totalseg -- "--data.classes=[liver, spleen]"

# --seeds 0 .. N-1 for N > 1 (seg batch --seeds: mean ± sd over seeds in the report); N = 1: one run each, no seed
seed_option = $(if $(filter-out 1,$(1)),--seeds $(shell seq 0 $$(( $(1) - 1 ))))

static-vs-dynamic: .installed  ## CONFIG (DATA) trained with none and reduce_on_plateau, SEEDS (1) seeds, then compared
	$(SEG) batch --name static_vs_dynamic --config $(or $(CONFIG),$(ROOT)/configs/demo.yaml) --archs $(or $(ARCHS),unet) \
		--schedulers none reduce_on_plateau $(EXTRA_SCHEDULERS) --epochs $(or $(EPOCHS),20) $(if $(DATA),--data $(DATA)) \
		$(call seed_option,$(or $(SEEDS),1)) --report $(or $(OUT),reports/static_vs_dynamic)

# the seed document's claim: reduce_on_plateau for N epochs is as good as none for 2N (docs/batches-and-measurement.md)
CLAIM_N = $(or $(EPOCHS),40)
CLAIM_2N = $(shell echo $$(( 2 * $(CLAIM_N) )))
CLAIM = --config $(or $(CONFIG),$(ROOT)/configs/demo.yaml) --archs $(or $(ARCHS),unet) --gpus $(GPUS) \
	$(if $(DATA),--data $(DATA)) --seeds $(shell seq 0 $$(( $(or $(SEEDS),3) - 1 ))) $(if $(NO_ESTIMATE),--no-estimate)
dynamic-lr-claim: .installed  ## none for 2N epochs vs reduce_on_plateau for N=EPOCHS (40), SEEDS (3): one sentence
	$(SEG) batch --name dynamic_lr_claim_none_$(CLAIM_2N) --schedulers none --epochs $(CLAIM_2N) $(CLAIM)
	$(SEG) batch --name dynamic_lr_claim_reduce_on_plateau_$(CLAIM_N) --schedulers reduce_on_plateau --epochs $(CLAIM_N) $(CLAIM)
	$(SEG) report lightning_logs/batches/dynamic_lr_claim_none_$(CLAIM_2N) \
		lightning_logs/batches/dynamic_lr_claim_reduce_on_plateau_$(CLAIM_N) --out $(or $(OUT),reports/dynamic_lr_claim) \
		--title "reduce_on_plateau for $(CLAIM_N) epochs vs none for $(CLAIM_2N)" --claim reduce_on_plateau none

.PHONY: compare
compare: .installed  ## val Dice and LR curves (PNG) and a table of RUNS (run directories) into OUT
	@test -n "$(RUNS)" || { echo "usage: make compare RUNS=\"lightning_logs/<run>/version_N ...\" [OUT=reports/compare]"; exit 2; }
	$(SEG) report $(RUNS) --out $(or $(OUT),reports/compare)

tensorboard: .installed  ## LR, loss and Dice curves of every run
	$(PYTHON) -m tensorboard.main --logdir lightning_logs

clean:
	rm -rf lightning_logs data/demo .installed
