# seg: the two set-up commands are `make demo` and `make test`; both install what they need first.
PYTHON ?= python3
# torch is installed first, only when missing: PyPI's build for this machine (CUDA on a GPU box).
TORCH ?= torch==2.13.0
SEG := $(PYTHON) -m segmentation

.PHONY: install demo test tensorboard resume clean

EPOCHS ?= 100

install: .installed

.installed: pyproject.toml
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "$(TORCH)"
	$(PYTHON) -m pip install -e ".[dev]"
	touch .installed

demo: .installed  ## train on the synthetic demo task (written to data/demo on first use)
	$(SEG) fit --config configs/demo.yaml

test: .installed  ## the whole test suite
	$(PYTHON) -m pytest -q

resume: .installed  ## continue RUN (a run directory) from its newest good checkpoint to EPOCHS [SCHEDULER=...]
	@test -n "$(RUN)" || { echo "usage: make resume RUN=lightning_logs/<run>/version_N EPOCHS=100 [SCHEDULER=reduce_on_plateau]"; exit 2; }
	$(SEG) fit --ckpt_path "$(RUN)" --trainer.max_epochs $(EPOCHS) $(if $(SCHEDULER),--model.scheduler $(SCHEDULER))

tensorboard: .installed  ## LR, loss and Dice curves of every run
	$(PYTHON) -m tensorboard.main --logdir lightning_logs

clean:
	rm -rf lightning_logs data/demo .installed
