"""The one command line: `feedbackrl ...`.

Each group of commands lives in `feedbackrl/commands/<group>.py` and imports its heavy
dependencies inside the command, so `feedbackrl --help` stays fast. Errors at this boundary
(bad config, missing file) print one red line and exit 2; they never show a traceback.
"""

from __future__ import annotations

import sys

import typer

from feedbackrl.commands import core, logs, offline, ope, reward_model, rewards, sandbox, shop

app = typer.Typer(
    name="feedbackrl",
    help="Online and offline RL from feedback for language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
core.register(app)
reward_model.register(app)
offline.register(app)
app.add_typer(rewards.app, name="rewards", help="Inspect and train rewards.")
app.add_typer(sandbox.app, name="sandbox", help="Run untrusted Python against tests in the sandbox.")
app.add_typer(shop.app, name="shop", help="The e-commerce search simulator.")
app.add_typer(logs.app, name="logs", help="Interaction logs: store, export, convert.")
ope.register(app)


def main() -> None:
    from feedbackrl.commands.errors import run_cli

    sys.exit(run_cli(app))


if __name__ == "__main__":
    main()
