"""SQLite storage for orders and rejections, idempotent on Message-ID."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from mail_order_bot.orders import Order

SCHEMA = """
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
        with self._connect() as conn:
            conn.executescript(SCHEMA)

    def save_order(self, order: Order) -> bool:
        """Store the order and its lines in one transaction; False when its Message-ID was already stored."""
        conn = self._connect()
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.execute(
                "INSERT OR IGNORE INTO orders(message_id, customer, total, created_at) VALUES (?, ?, ?, ?)",
                (order.message_id, order.customer, str(order.total), time.time()),
            )
            if cursor.rowcount == 0:
                return False
            conn.executemany(
                "INSERT INTO order_lines(order_id, sku, quantity, unit_price) VALUES (?, ?, ?, ?)",
                [(cursor.lastrowid, line.sku, line.quantity, str(line.unit_price)) for line in order.lines],
            )
        return True

    def record_rejection(self, message_id: str, reason: str) -> bool:
        """Record why a message was rejected; False when it was already recorded."""
        conn = self._connect()
        with conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO rejections(message_id, reason, created_at) VALUES (?, ?, ?)",
                (message_id, reason, time.time()),
            )
        return cursor.rowcount > 0

    def outcome(self, message_id: str) -> str | None:
        """'stored' or 'rejected' when this Message-ID was already handled, else None."""
        conn = self._connect()
        if conn.execute("SELECT 1 FROM orders WHERE message_id = ?", (message_id,)).fetchone():
            return "stored"
        if conn.execute("SELECT 1 FROM rejections WHERE message_id = ?", (message_id,)).fetchone():
            return "rejected"
        return None

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
