"""One module per `vrlvr` subcommand: add_arguments(parser) and run(args) -> int."""
