"""Placeholder: ``facegate policy`` is being built (issue 7)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Access rules and quotas (declarative files).")
