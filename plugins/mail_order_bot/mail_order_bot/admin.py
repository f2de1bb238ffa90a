"""The bot's console pages: orders (latest first, searched by customer or Message-ID) and rejections."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from flask import request

PAGE = 100


def register(admin: Any, database: str) -> None:
    """Add "Orders" and "Rejections" to the console, reading the bot's database `database`."""

    def orders() -> str:
        query = request.args.get("q", "").strip()[:200]
        return admin.render("mail_order_bot/orders.html", orders=find_orders(database, query), q=query)

    def rejections() -> str:
        return admin.render("mail_order_bot/rejections.html", rejections=find_rejections(database))

    admin.page("orders", "Orders", orders)
    admin.page("rejections", "Rejections", rejections)


def _read(database: str) -> sqlite3.Connection | None:
    path = Path(database)
    if not path.exists():
        return None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def find_orders(database: str, query: str = "") -> list[dict[str, Any]]:
    """The latest orders (at most PAGE), with lines, whose customer or Message-ID contains `query`."""
    conn = _read(database)
    if conn is None:
        return []
    with closing(conn):
        like = f"%{query.replace('%', '').replace('_', '')}%"
        rows = conn.execute("SELECT id, message_id, customer, total, created_at FROM orders "
                            "WHERE customer LIKE ? OR message_id LIKE ? ORDER BY id DESC LIMIT ?",
                            (like, like, PAGE)).fetchall()
        found = [dict(row, lines=[]) for row in rows]
        by_id = {order["id"]: order for order in found}
        if by_id:
            marks = ",".join("?" * len(by_id))
            for line in conn.execute(f"SELECT order_id, sku, quantity, unit_price FROM order_lines "
                                     f"WHERE order_id IN ({marks}) ORDER BY rowid", tuple(by_id)):
                by_id[line["order_id"]]["lines"].append(dict(line))
    return found


def find_rejections(database: str) -> list[dict[str, Any]]:
    """The latest rejections (at most PAGE) with their reasons."""
    conn = _read(database)
    if conn is None:
        return []
    with closing(conn):
        return [dict(row) for row in conn.execute(
            "SELECT message_id, reason, created_at FROM rejections ORDER BY created_at DESC LIMIT ?", (PAGE,))]
