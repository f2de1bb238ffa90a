"""The platform database: created on first use, versioned migrations per component, several processes at once.

Every test taking `db` or `location` runs on SQLite and on PostgreSQL; those about files, on SQLite.
"""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from plba.audit import AuditEvent
from plba.audit.database import DatabaseAuditStore
from plba.db import Database, IntegrityError, Migration, open_database
from plba.errors import ConfigError, DatabaseError
from plba.masking import MASK
from plba.testing import wait_until
from plba.users import Accounts

NOTES = (Migration(1, ("CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL)",)),)
NOTES_V2 = (*NOTES, Migration(2, ("ALTER TABLE notes ADD COLUMN author TEXT",)))


def recorded(location: str) -> list[tuple[str, int]]:
    """The (component, version) rows of the migrations table, read through a database of its own."""
    database = open_database(location)
    try:
        with database.transaction() as tx:
            rows = tx.all("SELECT component, version FROM plba_migrations ORDER BY component, version")
    finally:
        database.close()
    return [(row["component"], row["version"]) for row in rows]


def test_asking_whether_the_database_exists_creates_nothing(db: Database, location: str) -> None:
    # Given a database that was only opened, then it does not exist, also when asked again elsewhere
    assert not db.exists()
    assert not open_database(location).exists()
    # When a component migrates, then it exists
    db.migrate("notes", NOTES)
    assert db.exists()


def test_the_file_and_its_directory_are_created_on_first_use_in_wal_mode(db_path: Path) -> None:
    # Given a SQLite database that was only opened, then asking creates no file
    db = open_database(str(db_path))
    assert not db.exists()
    assert not db_path.parent.exists()
    # When a component migrates
    db.migrate("notes", NOTES)
    db.close()
    # Then the file exists, in WAL mode, readable by its owner only
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


def test_migrations_run_once_in_order_and_each_component_keeps_its_own_versions(db: Database, location: str) -> None:
    # Given two components migrating one database
    assert db.migrate("notes", NOTES) == [1]
    assert db.migrate("other", (Migration(1, ("CREATE TABLE other (x INTEGER)",)),)) == [1]
    # When a new process knows a second notes migration
    again = open_database(location)
    assert again.migrate("notes", NOTES_V2) == [2]
    # Then the first one is not run again and every step is recorded
    third = open_database(location)
    assert third.migrate("notes", NOTES_V2) == []
    third.close()
    assert recorded(location) == [("notes", 1), ("notes", 2), ("other", 1)]
    with again.transaction(write=True) as tx:
        tx.execute("INSERT INTO notes (id, body, author) VALUES (?, ?, ?)", ("n1", "hello", "ann"))
    with again.transaction() as tx:
        assert tx.all("SELECT id, body, author FROM notes") == [{"id": "n1", "body": "hello", "author": "ann"}]
    again.close()


def test_a_migration_can_give_other_statements_for_one_backend(db: Database) -> None:
    # Given a migration whose form for this backend differs from its portable form
    step = Migration(1, ("CREATE TABLE portable (x INTEGER)",), {db.dialect: ("CREATE TABLE own (x INTEGER)",)})
    # When applied, then the backend's statements ran instead of the portable ones
    db.migrate("mixed", (step,))
    with db.transaction() as tx:
        assert tx.all("SELECT x FROM own") == []
    with pytest.raises(DatabaseError, match="portable"), db.transaction() as tx:
        tx.all("SELECT x FROM portable")


def test_a_schema_newer_than_this_code_is_refused_with_one_line(db: Database, location: str) -> None:
    # Given a database migrated by a newer release
    db.migrate("notes", NOTES_V2)
    # When an older release opens it, then it refuses naming the component and versions
    with pytest.raises(DatabaseError, match=r"notes schema is version 2, newer than this plba knows \(1\)"):
        open_database(location).migrate("notes", NOTES)


def test_a_failing_transaction_leaves_nothing_behind(db: Database) -> None:
    # Given a table with one row
    db.migrate("notes", NOTES)
    with db.transaction(write=True) as tx:
        tx.execute("INSERT INTO notes VALUES ('a', 'first')")
    # When a transaction writes a row, then breaks a constraint
    with pytest.raises(IntegrityError, match="(?i)unique"), db.transaction(write=True) as tx:
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


def test_an_unknown_url_is_a_configuration_error() -> None:
    # Given a URL this release cannot serve, then it is a configuration error naming the key
    with pytest.raises(ConfigError, match="platform.database: unsupported URL scheme 'mysql'"):
        open_database("mysql://db.example/plba")


def test_an_unreachable_postgresql_is_one_line_naming_it_without_its_password() -> None:
    pytest.importorskip("psycopg_pool", reason="the postgres extra is not installed")
    from tests.postgres.server import free_port

    # Given a PostgreSQL URL with a password where nothing listens
    db = open_database(f"postgresql://plba:s3cret-pw@127.0.0.1:{free_port()}/plba")
    # When it is asked, then the error names the database with its password masked
    with pytest.raises(DatabaseError) as failed:
        db.exists()
    db.close()
    message = str(failed.value)
    assert message.startswith(f"platform database postgresql://plba:{MASK}@127.0.0.1:")
    assert "unavailable" in message and "s3cret-pw" not in message and "\n" not in message


WRITER = textwrap.dedent('''
    import sys
    from plba.db import Migration, open_database

    location, worker = sys.argv[1], sys.argv[2]
    db = open_database(location)
    db.migrate("notes", (Migration(1, ("CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT NOT NULL)",)),))
    for n in range(100):
        with db.transaction(write=True) as tx:
            count = tx.one("SELECT COUNT(*) AS n FROM notes")["n"]
            tx.execute("INSERT INTO notes VALUES (?, ?)", (f"{worker}-{n}", str(count)))
    db.close()
''')


def test_processes_starting_together_on_a_new_database_migrate_once_and_lose_no_write(location: str) -> None:
    # Given four processes that create, migrate and write the same new database at the same moment
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, location, str(worker)], stderr=subprocess.PIPE,
                                text=True) for worker in range(4)]
    results = [(writer.wait(60), writer.stderr.read()) for writer in writers]
    for writer in writers:
        writer.stderr.close()
    # Then every one succeeded, the migration ran once, and all 400 rows are there
    assert results == [(0, "")] * 4
    assert recorded(location) == [("notes", 1)]
    database = open_database(location)
    with database.transaction() as tx:
        rows = tx.all("SELECT body FROM notes")
    database.close()
    # Each write saw every earlier one: the counts read inside the write transactions are 0..399.
    assert sorted(int(row["body"]) for row in rows) == list(range(400))


def test_a_nul_a_client_sent_finds_nothing_and_is_kept_readable(db: Database) -> None:
    # Given the users and the audit log of a database (PostgreSQL text cannot hold NUL; SQLite can)
    accounts = Accounts(db)
    store = DatabaseAuditStore(lambda: db)
    # When a name with a NUL is looked up, and an event naming it is kept
    found = accounts.users.get("ad\x00min"), accounts.tokens.list()
    store.append(AuditEvent(time.time(), "anonymous", "users.remove", "ad\x00min", {}, "refused", None, None))
    # Then nothing is found, and the event is there, its target readable
    assert found == (None, [])
    assert store.recent(1)[0].target in ("ad\x00min", "ad\ufffdmin")


def test_closing_wakes_a_connection_waiting_to_switch_the_file_to_wal(db_path: Path) -> None:
    # Given a new file another connection is writing to, so switching it to WAL is refused at once
    db_path.parent.mkdir(parents=True)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("CREATE TABLE other (a)")
    holder.execute("BEGIN IMMEDIATE")
    db = open_database(str(db_path))
    db.busy_timeout = 600.0  # type: ignore[attr-defined]
    errors: list[Exception] = []

    def connect() -> None:
        try:
            db.migrate("notes", NOTES)
        except DatabaseError as exc:
            errors.append(exc)

    waiting = threading.Thread(target=connect)
    waiting.start()
    try:
        # When the database is closed (again, until the waiting connection has noticed)
        wait_until(lambda: db.close() or not waiting.is_alive(), message="the waiting connection to give up")
    finally:
        holder.rollback()
        holder.close()
        waiting.join()
    # Then it gave up at once, long before its busy timeout, saying why
    assert [str(exc) for exc in errors] == [f"platform database {db_path}: closed while waiting to open it"]
