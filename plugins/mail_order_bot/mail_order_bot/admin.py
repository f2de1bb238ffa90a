"""The bot's console pages: orders (latest first, searched by customer or Message-ID) and rejections, with retry."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from flask import abort, flash, redirect, request
from werkzeug.wrappers import Response

from mail_order_bot.config import BotConfig
from mail_order_bot.retry import Retrier, RetryError, header_message_id
from mail_order_bot.store import OrderStore

PAGE = 100


def register(admin: Any, config: BotConfig) -> None:
    """Add "Orders" and "Rejections" (with the operator's "retry") to the console, for the bot `config` describes."""
    database = config.database

    def orders() -> str:
        query = request.args.get("q", "").strip()[:200]
        return admin.render("mail_order_bot/orders.html", orders=find_orders(database, query), q=query)

    def rejections() -> str:
        return admin.render("mail_order_bot/rejections.html", rejections=find_rejections(database))

    def retry_rejections() -> Response:
        # One `message_id` per rejection: the row's button sends one, "Retry all shown" every retryable row.
        message_ids = [value.strip() for value in request.form.getlist("message_id")[:PAGE] if value.strip()]
        if not message_ids or any(len(value) > 2000 for value in message_ids):
            abort(400, "the form gives no Message-ID to retry")
        done, failed = [], []
        store = OrderStore(database)
        try:
            with Retrier(store, config.mailbox()) as retrier:
                for message_id in message_ids:
                    try:
                        done.append(retrier.retry(message_id))
                    except RetryError as exc:
                        failed.append(str(exc))
        finally:
            store.close()
        if failed:
            # Raised on, so the audit event says "failed" and why; the console shows the line.
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            abort(409, (f"{len(done)} retried; " if done else "") + failed[0] + more)
        flash(done[0] if len(done) == 1 else f"{len(done)} rejections retried: their mails are back in the inbox, "
              f"unseen; the bot will process them again", "ok")
        return redirect(request.path.rsplit("/", 1)[0])

    admin.page("orders", "Orders", orders)
    admin.page("rejections", "Rejections", rejections)
    admin.action("rejections/retry", retry_rejections, role="operator")


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
    """The latest rejections (at most PAGE) with their reasons, subjects and senders; `retryable` when findable."""
    conn = _read(database)
    if conn is None:
        return []
    with closing(conn):
        rows = conn.execute("SELECT * FROM rejections ORDER BY created_at DESC LIMIT ?", (PAGE,)).fetchall()
    # SELECT *: a database the bot has not migrated yet lacks the newer columns.
    return [{"subject": None, "sender": None, "retry_since": None, **dict(row),
             "retryable": header_message_id(row["message_id"]) is not None} for row in rows]
