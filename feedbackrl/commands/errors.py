"""Turn boundary errors into one clear line and exit code 2 instead of a traceback."""

from __future__ import annotations

import typer


class UserError(Exception):
    """An error in what the user gave us (a file, a flag, a checkpoint); printed as one line."""


def run_cli(app: typer.Typer) -> int:
    from feedbackrl.config import ConfigError

    try:
        # without standalone mode click returns a command's `typer.Exit(code)` instead of exiting
        rv = app(standalone_mode=False)
        if isinstance(rv, int):
            return rv
    except (ConfigError, UserError, FileNotFoundError) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        return 2
    except SystemExit as e:  # typer/click exits
        return int(e.code or 0)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
        return 130
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return e.exit_code
        if isinstance(e, click.exceptions.Abort):
            return 1
        raise
    return 0
