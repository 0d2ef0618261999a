"""One module per `seg` subcommand other than LightningCLI's; each has `main(argv) -> int`."""
