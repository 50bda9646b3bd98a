"""Alembic migrations (``migrations/``): the one ``upgrade()`` that the server start,
``run.py db upgrade`` and the tests call."""

from __future__ import annotations

from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent.parent / "migrations"


def alembic_config(url: str):
    """An Alembic Config pointing at ``migrations/`` and ``url``."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str) -> None:
    """Apply all Alembic migrations to the database at ``url`` (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
