"""The ``hub`` command line: what an operator does, one subcommand each."""

from __future__ import annotations

import typer

from hub.commands import analyst, api, check_ids, conflicts, demo, identity, pipeline, quality, samples, warehouse

app = typer.Typer(name="hub", help="Cross-department data-sharing hub.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)

for module in (demo, samples, pipeline, check_ids, quality, identity, conflicts, analyst, api, warehouse):
    module.register(app)


if __name__ == "__main__":
    app()
