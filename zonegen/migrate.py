"""Run the Alembic migrations shipped in the ``migrations`` package.

Writing commands open the database through :func:`zonegen.store.open` in ``write``
mode, which upgrades to head here, so an operator never creates or alters a table by
hand; reading commands never migrate (see :mod:`zonegen.store.database`).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from zonegen.errors import StoreError


def _script_location() -> str:
    """The migrations directory: ``zonegen.migrations`` in an installed wheel (it adds no
    top-level ``migrations`` name), ``migrations/`` at the top of a checkout."""
    try:
        from zonegen import migrations  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        import migrations
    return str(Path(migrations.__file__).parent)


def _config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    cfg.attributes["engine"] = engine
    return cfg


class UnknownRevision(StoreError):
    """The database was migrated by a newer zonegen than this one."""


def _scripts() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    return ScriptDirectory.from_config(cfg)


def head() -> str | None:
    return _scripts().get_current_head()


def known(revision: str) -> bool:
    """Whether ``revision`` is one of the migrations shipped with this zonegen."""
    return any(script.revision == revision for script in _scripts().walk_revisions())


def unknown_revision_message(revision: str) -> str:
    return (f"database schema is at revision {revision!r}, which this zonegen does not "
            f"know (it knows up to {head()!r}): it was written by a newer zonegen; "
            "upgrade zonegen")


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to ``revision``; a no-op (one cheap query) when already there.

    :raises UnknownRevision: the database is at a revision this zonegen does not know (a
        newer zonegen migrated it); it is left untouched.
    """
    now = current(engine)
    if revision == "head" and now == head():
        return
    if now is not None and not known(now):
        raise UnknownRevision(unknown_revision_message(now))
    command.upgrade(_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(_config(engine), revision)
