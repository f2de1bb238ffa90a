"""The platform database: created on first use, versioned migrations per component, several processes at once."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plba.db import Database, IntegrityError, Migration, open_database
from plba.errors import ConfigError, DatabaseError

NOTES = (Migration(1, ("CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL)",)),)
NOTES_V2 = (*NOTES, Migration(2, ("ALTER TABLE notes ADD COLUMN author TEXT",)))


def recorded(path: Path) -> list[tuple[str, int]]:
    """The (component, version) rows of the migrations table, read with plain sqlite3."""
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT component, version FROM plba_migrations ORDER BY 1, 2").fetchall()


def test_nothing_is_created_until_first_used_then_the_file_and_its_directory_exist(db: Database, db_path) -> None:
    # Given a database that was only opened, then it does not exist and asking creates nothing
    assert not db.exists()
    assert not db_path.parent.exists()
    # When a component migrates
    db.migrate("notes", NOTES)
    # Then the file exists, in WAL mode, readable by its owner only
    assert db.exists()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_relative_location_is_under_the_working_directory(tmp_path, monkeypatch) -> None:
    # Given the default location and a working directory
    monkeypatch.chdir(tmp_path)
    database = open_database("var/plba.sqlite")
    # When it is first used, then the file is in that directory
    database.migrate("notes", NOTES)
    database.close()
    assert (tmp_path / "var" / "plba.sqlite").is_file()


def test_migrations_run_once_in_order_and_each_component_keeps_its_own_versions(db: Database, db_path) -> None:
    # Given two components migrating one database
    assert db.migrate("notes", NOTES) == [1]
    assert db.migrate("other", (Migration(1, ("CREATE TABLE other (x INTEGER)",)),)) == [1]
    # When a new process knows a second notes migration
    again = open_database(str(db_path))
    assert again.migrate("notes", NOTES_V2) == [2]
    # Then the first one is not run again and every step is recorded
    assert open_database(str(db_path)).migrate("notes", NOTES_V2) == []
    assert recorded(db_path) == [("notes", 1), ("notes", 2), ("other", 1)]
    with again.transaction(write=True) as tx:
        tx.execute("INSERT INTO notes (id, body, author) VALUES (?, ?, ?)", ("n1", "hello", "ann"))
    with again.transaction() as tx:
        assert tx.all("SELECT id, body, author FROM notes") == [{"id": "n1", "body": "hello", "author": "ann"}]
    again.close()


def test_a_migration_can_give_other_statements_for_one_backend(db: Database) -> None:
    # Given a migration whose sqlite form differs from its portable form
    step = Migration(1, ("CREATE TABLE portable (x INTEGER)",), {"sqlite": ("CREATE TABLE lite (x INTEGER)",)})
    # When applied on SQLite, then the sqlite statements ran
    db.migrate("mixed", (step,))
    with db.transaction() as tx:
        assert tx.all("SELECT name FROM sqlite_master WHERE name IN ('portable', 'lite')") == [{"name": "lite"}]


def test_a_schema_newer_than_this_code_is_refused_with_one_line(db: Database, db_path) -> None:
    # Given a database migrated by a newer release
    db.migrate("notes", NOTES_V2)
    # When an older release opens it, then it refuses naming the component and versions
    with pytest.raises(DatabaseError, match=r"notes schema is version 2, newer than this plba knows \(1\)"):
        open_database(str(db_path)).migrate("notes", NOTES)


def test_a_failing_transaction_leaves_nothing_behind(db: Database) -> None:
    # Given a table with one row
    db.migrate("notes", NOTES)
    with db.transaction(write=True) as tx:
        tx.execute("INSERT INTO notes VALUES ('a', 'first')")
    # When a transaction writes a row, then breaks a constraint
    with pytest.raises(IntegrityError, match="UNIQUE"), db.transaction(write=True) as tx:
        tx.execute("INSERT INTO notes VALUES ('b', 'second')")
        tx.execute("INSERT INTO notes VALUES ('a', 'duplicate')")
    # Then neither write stays
    with db.transaction() as tx:
        assert tx.all("SELECT id FROM notes") == [{"id": "a"}]


def test_a_file_that_is_not_a_database_is_one_clear_error(db_path) -> None:
    # Given garbage where the database should be
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not sqlite" * 100)
    # When it is used, then the error names the file
    with pytest.raises(DatabaseError, match=rf"platform database {db_path}: .*not a database"):
        open_database(str(db_path)).migrate("notes", NOTES)


def test_postgresql_and_unknown_urls_are_configuration_errors() -> None:
    # Given URLs this release cannot serve, then each is a configuration error naming the key
    with pytest.raises(ConfigError, match="platform.database: a PostgreSQL platform database is not supported yet"):
        open_database("postgresql://db.example/plba")
    with pytest.raises(ConfigError, match="platform.database: unsupported URL scheme 'mysql'"):
        open_database("mysql://db.example/plba")


WRITER = textwrap.dedent('''
    import sys
    from plba.db import Migration, open_database

    path, worker = sys.argv[1], sys.argv[2]
    db = open_database(path)
    db.migrate("notes", (Migration(1, ("CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL)",)),))
    for n in range(100):
        with db.transaction(write=True) as tx:
            count = tx.one("SELECT COUNT(*) AS n FROM notes")["n"]
            tx.execute("INSERT INTO notes VALUES (?, ?)", (f"{worker}-{n}", str(count)))
    db.close()
''')


def test_processes_starting_together_on_a_new_file_migrate_once_and_lose_no_write(db_path) -> None:
    # Given four processes that create, migrate and write the same new file at the same moment
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(db_path), str(worker)], stderr=subprocess.PIPE,
                                text=True) for worker in range(4)]
    results = [(writer.wait(60), writer.stderr.read()) for writer in writers]
    for writer in writers:
        writer.stderr.close()
    # Then every one succeeded, the migration ran once, and all 400 rows are there
    assert results == [(0, "")] * 4
    assert recorded(db_path) == [("notes", 1)]
    with sqlite3.connect(db_path) as connection:
        rows = connection.execute("SELECT body FROM notes").fetchall()
    # Each write saw every earlier one: the counts read inside the write transactions are 0..399.
    assert sorted(int(body) for (body,) in rows) == list(range(400))
