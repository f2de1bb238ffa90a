"""SQLite storage for orders and rejections, idempotent on Message-ID."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from mail_order_bot.orders import Order

# The schema as first released (version 0): databases made then have these tables and no user_version.
BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    customer TEXT NOT NULL,
    total TEXT NOT NULL,            -- exact decimal, e.g. '12.50'
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS order_lines_order ON order_lines(order_id);
CREATE TABLE IF NOT EXISTS rejections (
    message_id TEXT NOT NULL UNIQUE,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""
# Each entry moves the schema up one version (PRAGMA user_version); never edit one once released.
MIGRATIONS = (
    # 1: the content digest that tells a redelivery from another mail reusing a Message-ID (NULL for
    # rows stored before it), and the mail parked while its task is dead-lettered.
    """
    ALTER TABLE orders ADD COLUMN digest TEXT;
    ALTER TABLE rejections ADD COLUMN digest TEXT;
    CREATE TABLE parked (
        mailbox TEXT NOT NULL,
        mail_key TEXT NOT NULL,
        reason TEXT NOT NULL,
        parked_at REAL NOT NULL,
        PRIMARY KEY (mailbox, mail_key)
    );
    """,
    # 2: the rejected mail's subject and sender, for the console's Rejections page (NULL for older rows),
    # and when a retry from the console began (NULL unless one is under way).
    """
    ALTER TABLE rejections ADD COLUMN subject TEXT;
    ALTER TABLE rejections ADD COLUMN sender TEXT;
    ALTER TABLE rejections ADD COLUMN retry_since REAL;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


STORED, REJECTED, RETRYING = "stored", "rejected", "retrying"


@dataclass(frozen=True)
class Outcome:
    """What became of a Message-ID: stored, rejected or retrying (rejected, sent back by a retry), and its digest."""

    kind: str
    digest: str | None


@dataclass(frozen=True)
class StoredOrder:
    """An order as read back from the database."""

    id: int
    message_id: str
    customer: str
    total: Decimal
    lines: list[tuple[str, int, Decimal]]


class OrderStore:
    """Orders and rejections in one SQLite file (WAL mode); one connection per thread."""

    def __init__(self, path: str | Path, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate(self._connect())

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema to SCHEMA_VERSION, one versioned step at a time, each in its own transaction."""
        conn.executescript(BASE_SCHEMA)
        while (version := conn.execute("PRAGMA user_version").fetchone()[0]) < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read again under the write lock: another process may have migrated meanwhile.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version < SCHEMA_VERSION:
                    for statement in filter(str.strip, MIGRATIONS[version].split(";")):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {version + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"{self.path}: schema version {version} is newer than this bot's "
                                        f"({SCHEMA_VERSION}); upgrade mail-order-bot-plugin")

    def save_order(self, order: Order, digest: str | None = None) -> bool:
        """Store the order and its lines in one transaction; False when its Message-ID was already stored."""
        conn = self._connect()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.execute(
                "INSERT OR IGNORE INTO orders(message_id, customer, total, created_at, digest) VALUES (?, ?, ?, ?, ?)",
                (order.message_id, order.customer, str(order.total), time.time(), digest),
            )
            if cursor.rowcount == 0:
                return False
            conn.executemany(
                "INSERT INTO order_lines(order_id, sku, quantity, unit_price) VALUES (?, ?, ?, ?)",
                [(cursor.lastrowid, line.sku, line.quantity, str(line.unit_price)) for line in order.lines],
            )
            # A retried rejection that is now an order: the rejection goes with the same commit.
            conn.execute("DELETE FROM rejections WHERE message_id = ? AND retry_since IS NOT NULL",
                         (order.message_id,))
        return True

    def record_rejection(self, message_id: str, reason: str, digest: str | None = None,
                         subject: str | None = None, sender: str | None = None) -> bool:
        """Record why a message was rejected (replacing a retried rejection); False when it was already recorded."""
        conn = self._connect()
        with conn:
            cursor = conn.execute(
                "INSERT INTO rejections(message_id, reason, created_at, digest, subject, sender) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET reason = excluded.reason, "
                "created_at = excluded.created_at, digest = excluded.digest, subject = excluded.subject, "
                "sender = excluded.sender, retry_since = NULL WHERE rejections.retry_since IS NOT NULL",
                (message_id, reason, time.time(), digest, subject, sender),
            )
        return cursor.rowcount > 0

    def outcome(self, message_id: str) -> Outcome | None:
        """What became of this Message-ID (stored or rejected, with the digest), or None when it is new."""
        conn = self._connect()
        row = conn.execute("SELECT digest FROM orders WHERE message_id = ?", (message_id,)).fetchone()
        if row:
            return Outcome(STORED, row[0])
        row = conn.execute("SELECT digest, retry_since FROM rejections WHERE message_id = ?", (message_id,)).fetchone()
        if row:
            return Outcome(REJECTED if row[1] is None else RETRYING, row[0])
        return None

    def begin_retry(self, message_id: str) -> float | None:
        """Mark the rejection as retried, so the bot processes its mail afresh; the mark, or None when not rejected.

        The mark is set before the mail goes back to the inbox: the bot may take the mail up before
        `finish_retry` runs, and must not take it for a duplicate of its own rejection.
        """
        mark = time.time()
        with self._connect() as conn:
            cursor = conn.execute("UPDATE rejections SET retry_since = ? WHERE message_id = ?", (mark, message_id))
        return mark if cursor.rowcount else None

    def finish_retry(self, message_id: str, mark: float) -> bool:
        """Delete the rejection its mail went back for; False when the bot (or another retry) got there first."""
        with self._connect() as conn:
            cursor = conn.execute("DELETE FROM rejections WHERE message_id = ? AND retry_since = ?", (message_id, mark))
        return cursor.rowcount > 0

    def abandon_retry(self, message_id: str, mark: float) -> None:
        """The mail could not be sent back: the rejection stands as it was."""
        with self._connect() as conn:
            conn.execute("UPDATE rejections SET retry_since = NULL WHERE message_id = ? AND retry_since = ?",
                         (message_id, mark))

    def park(self, mailbox: str, key: str, reason: str) -> None:
        """Keep a mail out of discovery while its task is dead (or on its last attempt)."""
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO parked(mailbox, mail_key, reason, parked_at) VALUES (?, ?, ?, ?)",
                         (mailbox, key, reason, time.time()))

    def unpark(self, mailbox: str, key: str | None = None) -> int:
        """Let discovery see the mail again (every mail of the mailbox when `key` is None); how many were parked."""
        with self._connect() as conn:
            if key is None:
                cursor = conn.execute("DELETE FROM parked WHERE mailbox = ?", (mailbox,))
            else:
                cursor = conn.execute("DELETE FROM parked WHERE mailbox = ? AND mail_key = ?", (mailbox, key))
        return cursor.rowcount

    def parked(self, mailbox: str) -> dict[str, str]:
        """Reasons by key of the mails parked in this mailbox."""
        rows = self._connect().execute("SELECT mail_key, reason FROM parked WHERE mailbox = ?", (mailbox,))
        return dict(rows.fetchall())

    def orders(self) -> list[StoredOrder]:
        """Every stored order with its lines, oldest first."""
        conn = self._connect()
        rows = conn.execute("SELECT id, message_id, customer, total FROM orders ORDER BY id").fetchall()
        lines: dict[int, list[tuple[str, int, Decimal]]] = {}
        for order_id, sku, quantity, price in conn.execute(
                "SELECT order_id, sku, quantity, unit_price FROM order_lines ORDER BY rowid"):
            lines.setdefault(order_id, []).append((sku, quantity, Decimal(price)))
        return [StoredOrder(id_, mid, customer, Decimal(total), lines.get(id_, []))
                for id_, mid, customer, total in rows]

    def rejections(self) -> dict[str, str]:
        """Reasons by Message-ID."""
        return dict(self._connect().execute("SELECT message_id, reason FROM rejections").fetchall())

    def check_writable(self, timeout: float = 2.0) -> None:
        """Raise sqlite3.Error unless a write transaction can be opened right now."""
        # A connection of its own: health checks run on short-lived threads that would leak thread-local ones.
        conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.rollback()
        finally:
            conn.close()

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: transactions are opened explicitly, so one order is one transaction.
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn
