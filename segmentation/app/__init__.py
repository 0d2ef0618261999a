"""The top layer: the `seg` command (`main`), SegCLI (`lightning_cli`), argv handling, the up-front refusals
(`preflight`), run histories read from TensorBoard events (`run_history`) and the subcommands (`commands/`).
Only this layer prints; library code logs through the `seg` logger, which `main` sends to the console."""
