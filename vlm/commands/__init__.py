"""One module per `vlm` subcommand; each registers itself in `vlm.cli.COMMANDS`."""
