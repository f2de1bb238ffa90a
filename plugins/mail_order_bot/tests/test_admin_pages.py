"""The bot's console pages: orders searched by customer or Message-ID, rejections with their reason, as text."""

from __future__ import annotations

from decimal import Decimal

from plba import create_runtime
from plba.control.app import create_app
from plba.db import open_database
from plba.users import Accounts

import mail_order_bot.plugin as bot_plugin
from mail_order_bot.orders import Order, OrderLine
from mail_order_bot.store import OrderStore

PASSWORD = "correct horse battery"
SUBJECT_XSS = "<script>alert('x')</script>"


def test_orders_and_rejections_pages(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = OrderStore(tmp_path / "orders.sqlite")
    store.save_order(Order("<a1@shop>", "ann@example.com", (OrderLine("SKU-1", 2, Decimal("1.50")),)))
    store.save_order(Order("<b2@shop>", "bob@example.com", (OrderLine("SKU-2", 1, Decimal("4")),)))
    store.record_rejection("<c3@shop>", f"no attachment in {SUBJECT_XSS}")
    store.close()
    Accounts(open_database("var/plba.sqlite")).users.add("viewer", "viewer", PASSWORD)
    settings = {"platform": {"admin": {"enabled": True}, "control": {"port": 0}, "tracing": {"transport": "noop"}},
                "mail_order_bot": {"database": str(tmp_path / "orders.sqlite")}}
    runtime = create_runtime(bot_plugin, settings=settings)
    client = create_app(runtime).test_client()
    token = client.get("/admin/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/admin/login", data={"username": "viewer", "password": PASSWORD, "csrf_token": token})
    page = client.get("/admin/plugins/mail_order_bot/orders").get_data(as_text=True)
    assert page.index("bob@example.com") < page.index("ann@example.com")
    found = client.get("/admin/plugins/mail_order_bot/orders?q=a1@shop").get_data(as_text=True)
    assert "ann@example.com" in found and "bob@example.com" not in found and "2 × SKU-1" in found
    rejected = client.get("/admin/plugins/mail_order_bot/rejections").get_data(as_text=True)
    assert SUBJECT_XSS not in rejected and "&lt;script&gt;alert(" in rejected
    runtime.close()
