"""`feedbackrl ope ...`: off-policy evaluation of a target policy on logged interactions."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    pass
