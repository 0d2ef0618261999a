"""Where a batch's runs run: one after another (`serial`), several at once on this machine (`local`), or as the tasks
of one SLURM job array (`slurm`, with `slurm_task` as each task's entry point)."""
