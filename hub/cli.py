"""The ``hub`` command line: what an operator does, one subcommand each (nouns grouped: ``hub keys add``)."""

from __future__ import annotations

import typer

# Each command module imports only typer, rich and the small core at the top; DuckDB, Arrow, SQLAlchemy,
# Airflow, GX and FastAPI are imported inside the commands, so `hub --help` stays fast.
from hub.commands import analyst, api, check_ids, conflicts, demo, identity, pipeline, quality, samples, warehouse
from hub.commands.common import handle_errors

app = typer.Typer(name="hub", help="Cross-department data-sharing hub.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)

for module in (demo, samples, pipeline, check_ids, quality, identity, conflicts, analyst, api, warehouse):
    module.register(app)

# The one place a HubError becomes its one-line message on stderr and an exit status, never a traceback.
handle_errors(app)


if __name__ == "__main__":
    app()
