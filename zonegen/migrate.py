"""Run the Alembic migrations shipped in the ``migrations`` package.

Writing commands open the database through :func:`zonegen.store.open` in ``write``
mode, which upgrades to head here, so an operator never creates or alters a table by
hand; reading commands never migrate (see :mod:`zonegen.store.database`).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from zonegen.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# Alembic (and the parse of every migration it does) costs a reading command about
# 0.2 s of its start; a database at head is told from the version table and the
# migration files' own ``revision``/``down_revision`` lines, and Alembic is imported only
# to migrate or to judge any other revision.


def _script_location() -> str:
    """The migrations directory: ``zonegen.migrations`` in an installed wheel (it adds no
    top-level ``migrations`` name), ``migrations/`` at the top of a checkout."""
    try:
        from zonegen import migrations  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        import migrations
    return str(Path(migrations.__file__).parent)


def _config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    cfg.attributes["engine"] = engine
    return cfg


class UnknownRevision(StoreError):
    """The database was migrated by a newer zonegen than this one."""


def _scripts() -> ScriptDirectory:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    return ScriptDirectory.from_config(cfg)


def head() -> str | None:
    return _scripts().get_current_head()


_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"$', re.M)
_DOWN = re.compile(r'^down_revision(?:: str \| None)? = (?:"([^"]+)"|None)$', re.M)


@functools.cache
def shipped_head() -> str | None:
    """:func:`head` read from the migration files' plain ``revision = "…"`` and
    ``down_revision = "…"`` lines, without Alembic: the one revision no other names as
    its ``down_revision``. None when a file does not say both plainly, or the files do
    not make one line of revisions (then ask :func:`head`)."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in (Path(_script_location()) / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev, down = _REVISION.findall(text), _DOWN.findall(text)
        if len(rev) != 1 or len(down) != 1:
            return None
        revisions.add(rev[0])
        if down[0]:
            downs.add(down[0])
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def known(revision: str) -> bool:
    """Whether ``revision`` is one of the migrations shipped with this zonegen."""
    return any(script.revision == revision for script in _scripts().walk_revisions())


def unknown_revision_message(revision: str) -> str:
    return (f"database schema is at revision {revision!r}, which this zonegen does not "
            f"know (it knows up to {head()!r}): it was written by a newer zonegen; "
            "upgrade zonegen")


def current(engine: Engine) -> str | None:
    """The database's schema revision (None: no zonegen schema yet), read from Alembic's
    version table directly; Alembic itself only for a table of several rows (branches:
    it says why that is an error)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        if len(rows) <= 1:
            return str(rows[0][0]) if rows else None
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to ``revision``; a no-op (one cheap query) when already there.

    :raises UnknownRevision: the database is at a revision this zonegen does not know (a
        newer zonegen migrated it); it is left untouched.
    """
    now = current(engine)
    if revision == "head" and now is not None and now == shipped_head():
        return
    if revision == "head" and now == head():
        return
    if now is not None and not known(now):
        raise UnknownRevision(unknown_revision_message(now))
    from alembic import command

    command.upgrade(_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(_config(engine), revision)
