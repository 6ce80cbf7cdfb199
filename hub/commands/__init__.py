"""Subcommands of the `hub` command line, one module per operator task."""
