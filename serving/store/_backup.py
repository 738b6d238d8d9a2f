"""Backups of the store: SQLite's online backup API, ``pg_dump``/``pg_restore`` for
PostgreSQL (Gavel's tables and the schema revision only, in the custom format).

A backup is a consistent snapshot taken while capture goes on writing: every record
committed before it starts is in it.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from serving.store._db import Database

GAVEL_TABLES = ("gavel_*", "alembic_version")


class BackupError(RuntimeError):
    """A backup or restore could not be done; the message says why and what to do."""


def _sqlite_path(db: Database) -> Path:
    name = make_url(db.url).database
    if not name or name == ":memory:":
        raise BackupError("an in-memory SQLite store has nothing to back up")
    return Path(name)


def _libpq(db: Database) -> tuple[str, dict[str, str]]:
    """The libpq URL without its password, and the environment that carries the password
    (``PGPASSWORD``): a password on the command line is visible to every user in ``ps``."""
    url = make_url(db.url).set(drivername="postgresql")
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    bare = URL.create("postgresql", url.username, None, url.host, url.port, url.database, url.query)
    return bare.render_as_string(hide_password=False), env


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed; install PostgreSQL's client tools "
            "(Debian: apt-get install postgresql-client)"
        )
    return found


def _run(argv: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise BackupError(f"{Path(argv[0]).name}: {last}")
    return proc.stdout


def backup(db: Database, path: Path) -> None:
    """Write a snapshot of the store to ``path`` (which must not exist)."""
    if path.exists():
        raise BackupError(f"{path} exists; choose a new file (a backup never overwrites one)")
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # 0600 from the start
    if db.dialect == "sqlite":
        src = sqlite3.connect(_sqlite_path(db))
        dst = sqlite3.connect(path)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        path.chmod(0o600)
        return
    tables = [arg for t in GAVEL_TABLES for arg in ("-t", t)]
    url, env = _libpq(db)
    _run([_pg_tool("pg_dump"), "-Fc", "--no-owner", "--no-privileges", *tables,
          "-f", str(path), url], env)  # fmt: skip
    path.chmod(0o600)


def describe(db: Database, path: Path) -> str:
    """What a backup holds, in one line (for ``restore --dry-run``)."""
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    if db.dialect == "sqlite":
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            n = con.execute("SELECT count(*) FROM gavel_traffic").fetchone()[0]
            rev = con.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{path} is not a Gavel SQLite backup ({exc})") from None
        finally:
            con.close()
        return f"{n} traffic records, schema revision {rev[0] if rev else 'none'}"
    listing = _run([_pg_tool("pg_restore"), "-l", str(path)])
    tables = sorted({ln.split()[-2] for ln in listing.splitlines() if " TABLE DATA " in ln})
    return f"{len(tables)} tables ({', '.join(tables)})"


def backup_revision(db: Database, path: Path) -> str | None:
    """The schema revision a backup was taken at (``None``: made before migrations)."""
    if db.dialect == "sqlite":
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError:
            return None
        finally:
            con.close()
        return str(row[0]) if row else None
    data = _run([_pg_tool("pg_restore"), "--data-only", "-t", "alembic_version", "-f", "-",
                 str(path)])  # fmt: skip
    found = re.search(r"^COPY [^\n]*alembic_version[^\n]*\n(\w+)\n", data, re.M)
    return found.group(1) if found else None


def restore(db: Database, path: Path) -> None:
    """Replace the store's Gavel tables with the backup at ``path``. A backup of a newer
    Gavel (a schema revision this code does not know) is refused before anything
    changes: this code could not read, upgrade or erase in it."""
    describe(db, path)  # refuses a missing or foreign file before anything changes
    from serving.store._revisions import known_revisions

    rev = backup_revision(db, path)
    if rev is not None and rev not in known_revisions():
        raise BackupError(
            f"{path} is at schema revision {rev}, newer than this Gavel knows; restore it "
            "with the Gavel that wrote it"
        )
    if db.dialect == "sqlite":
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dst = sqlite3.connect(_sqlite_path(db))
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return
    url, env = _libpq(db)
    held = _backup_tables(path)
    _run([_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
          "--single-transaction", "-d", url, str(path)], env)  # fmt: skip
    _drop_newer_tables(db, held)


def _backup_tables(path: Path) -> set[str]:
    listing = _run([_pg_tool("pg_restore"), "-l", str(path)])
    return {ln.split()[-2] for ln in listing.splitlines() if " TABLE " in ln}


def _drop_newer_tables(db: Database, held: set[str]) -> None:
    """Drop the Gavel tables an older backup did not hold (newer revisions made them):
    left in place, they would make the next ``store upgrade`` fail to create them."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(db.url)
    try:
        extra = [t for t in inspect(engine).get_table_names()
                 if t.startswith("gavel_") and t not in held]  # fmt: skip
        with engine.begin() as conn:
            for t in extra:
                conn.execute(text(f'DROP TABLE IF EXISTS "{t}" CASCADE'))
    finally:
        engine.dispose()
