# seg: the two set-up commands are `make demo` and `make test`; both install what they need first.
PYTHON ?= python3
# torch is installed first, only when missing: PyPI's build for this machine (CUDA on a GPU box).
TORCH ?= torch==2.13.0
SEG := $(PYTHON) -m segmentation

.PHONY: install demo test tensorboard clean

install: .installed

.installed: pyproject.toml
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "$(TORCH)"
	$(PYTHON) -m pip install -e ".[dev]"
	touch .installed

demo: .installed  ## train on the synthetic demo task (written to data/demo on first use)
	$(SEG) fit --config configs/demo.yaml

test: .installed  ## the whole test suite
	$(PYTHON) -m pytest -q

tensorboard: .installed  ## LR, loss and Dice curves of every run
	$(PYTHON) -m tensorboard.main --logdir lightning_logs

clean:
	rm -rf lightning_logs data/demo .installed
