"""SQLite storage: one transaction per order, idempotent on Message-ID."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal

import pytest

from mail_order_bot.orders import Order, OrderLine
from mail_order_bot.store import BASE_SCHEMA, SCHEMA_VERSION, OrderStore


def make_order(message_id: str = "<m1@x>") -> Order:
    return Order(message_id, "alice@acme.example",
                 (OrderLine("WID-001", 2, Decimal("2.50")), OrderLine("GAD-100", 1, Decimal("12.00"))))


def test_an_order_is_stored_with_its_lines(tmp_path):
    # Given an empty store
    store = OrderStore(tmp_path / "orders.sqlite")
    # When an order is saved
    assert store.save_order(make_order())
    # Then it reads back with its total and lines
    [stored] = store.orders()
    assert (stored.message_id, stored.customer, stored.total) == ("<m1@x>", "alice@acme.example", Decimal("17.00"))
    assert stored.lines == [("WID-001", 2, Decimal("2.50")), ("GAD-100", 1, Decimal("12.00"))]


def test_saving_the_same_message_twice_makes_one_order(tmp_path):
    # Given a stored order
    store = OrderStore(tmp_path / "orders.sqlite")
    store.save_order(make_order())
    # When the same Message-ID is saved again
    again = store.save_order(make_order())
    # Then nothing new is stored
    assert again is False
    assert len(store.orders()) == 1
    assert len(store.orders()[0].lines) == 2
    assert store.outcome("<m1@x>").kind == "stored"


def test_concurrent_saves_of_one_message_make_one_order(tmp_path):
    # Given several threads saving the same order at once
    store = OrderStore(tmp_path / "orders.sqlite")
    results = []
    threads = [threading.Thread(target=lambda: results.append(store.save_order(make_order()))) for _ in range(8)]
    # When they all run
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one of them stored it
    assert sorted(results) == [False] * 7 + [True]
    assert len(store.orders()) == 1


def test_rejections_are_recorded_once(tmp_path):
    # Given a store
    store = OrderStore(tmp_path / "orders.sqlite")
    # When a rejection is recorded twice
    assert store.record_rejection("<bad@x>", "no attachment")
    assert not store.record_rejection("<bad@x>", "no attachment")
    # Then one reason is on file
    assert store.rejections() == {"<bad@x>": "no attachment"}
    assert store.outcome("<bad@x>").kind == "rejected"
    assert store.outcome("<other@x>") is None


def test_the_database_uses_wal_and_the_documented_tables(tmp_path):
    # Given a new store
    OrderStore(tmp_path / "orders.sqlite").close()
    # When the file is inspected
    conn = sqlite3.connect(tmp_path / "orders.sqlite")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    columns = {table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")] for table in tables}
    # Then it is in WAL mode with the documented columns
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert columns["orders"] == ["id", "message_id", "customer", "total", "created_at", "digest"]
    assert columns["order_lines"] == ["order_id", "sku", "quantity", "unit_price"]
    assert columns["rejections"] == ["message_id", "reason", "created_at", "digest", "subject", "sender",
                                     "retry_since"]
    assert columns["parked"] == ["mailbox", "mail_key", "reason", "parked_at"]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_writable_database_passes_the_check_and_a_locked_one_fails(tmp_path):
    # Given a store in a directory
    store = OrderStore(tmp_path / "orders.sqlite")
    store.check_writable()
    # When another connection holds the write lock
    blocker = sqlite3.connect(tmp_path / "orders.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    # Then the check fails instead of hanging
    try:
        store.check_writable(timeout=0.1)
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
    else:
        raise AssertionError("check_writable passed while the database was locked")
    finally:
        blocker.rollback()


def test_a_database_of_the_first_schema_is_migrated_and_keeps_its_rows(tmp_path):
    # Given a database written by the first release (no user_version, no digests, no parked table)
    path = tmp_path / "orders.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(BASE_SCHEMA)
    conn.execute("INSERT INTO orders(message_id, customer, total, created_at) VALUES ('<old@x>', 'a@b', '5.00', 0)")
    conn.execute("INSERT INTO rejections(message_id, reason, created_at) VALUES ('<bad@x>', 'no attachment', 0)")
    conn.commit()
    conn.close()
    # When the store opens it (twice, as two processes would)
    OrderStore(path).close()
    store = OrderStore(path)
    # Then it is at the current version, its rows are intact, and their digest is unknown (NULL)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [(o.message_id, o.total) for o in store.orders()] == [("<old@x>", Decimal("5.00"))]
    assert store.outcome("<old@x>").digest is None and store.outcome("<bad@x>").kind == "rejected"
    store.park("maildir m", "k1", "dead")
    assert store.parked("maildir m") == {"k1": "dead"}


def test_a_database_from_a_newer_bot_is_refused(tmp_path):
    path = tmp_path / "orders.sqlite"
    OrderStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(sqlite3.DatabaseError, match="newer than this bot's"):
        OrderStore(path)
