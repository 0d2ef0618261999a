"""The top layer: the `seg` command (`main`), LightningCLI (`lightning_cli`), argv handling, subcommands."""
