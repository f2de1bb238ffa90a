"""The bot's console pages: orders searched by customer or Message-ID, rejections with their reason, as text."""

from __future__ import annotations

from decimal import Decimal

from mailkit import order_mail
from plba import create_runtime
from plba.control.app import create_app
from plba.db import open_database
from plba.users import Accounts

import mail_order_bot.plugin as bot_plugin
from mail_order_bot.catalogue import load_catalogue
from mail_order_bot.mailboxes import MaildirMailbox
from mail_order_bot.orders import Order, OrderLine
from mail_order_bot.processing import OrderProcessor
from mail_order_bot.store import OrderStore

PASSWORD = "correct horse battery"
SUBJECT_XSS = "<script>alert('x')</script>"
REJECTIONS = "/admin/plugins/mail_order_bot/rejections"


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
    log_in(client, "viewer")
    page = client.get("/admin/plugins/mail_order_bot/orders").get_data(as_text=True)
    assert page.index("bob@example.com") < page.index("ann@example.com")
    found = client.get("/admin/plugins/mail_order_bot/orders?q=a1@shop").get_data(as_text=True)
    assert "ann@example.com" in found and "bob@example.com" not in found and "2 × SKU-1" in found
    rejected = client.get("/admin/plugins/mail_order_bot/rejections").get_data(as_text=True)
    assert SUBJECT_XSS not in rejected and "&lt;script&gt;alert(" in rejected
    runtime.close()


XSS_SUBJECTS = ("<script>window.xss=1</script>", '<img src=x onerror="window.xss=2">')


def console(tmp_path, monkeypatch, **section):
    """A bot runtime (not started) with the console, a viewer and an operator; its test client."""
    monkeypatch.chdir(tmp_path)
    users = Accounts(open_database("var/plba.sqlite")).users
    users.add("viewer", "viewer", PASSWORD)
    users.add("operator", "operator", PASSWORD)
    settings = {"platform": {"admin": {"enabled": True}, "control": {"port": 0}, "tracing": {"transport": "noop"}},
                "mail_order_bot": {"database": str(tmp_path / "orders.sqlite"), "maildir": str(tmp_path / "mail"),
                                   **section}}
    runtime = create_runtime(bot_plugin, settings=settings)
    return runtime, create_app(runtime).test_client()


def csrf_of(client, path: str) -> str:
    """The CSRF token on the page at `path`."""
    return client.get(path).get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]


def log_in(client, name: str) -> str:
    """Log in as `name`; the CSRF token of the new session."""
    token = csrf_of(client, "/admin/login")
    client.post("/admin/login", data={"username": name, "password": PASSWORD, "csrf_token": token})
    return csrf_of(client, REJECTIONS)


def test_an_operator_retries_a_rejection_and_a_viewer_may_not(tmp_path, monkeypatch) -> None:
    # Given a mail rejected by the bot, whose subject carries markup
    box = MaildirMailbox(tmp_path / "mail")
    box.create()
    store = OrderStore(tmp_path / "orders.sqlite")
    key = box.deliver(order_mail(kind="none", message_id="<xss@shop>", subject=" ".join(XSS_SUBJECTS),
                                 sender="Mallory <mallory@evil.example>"))
    OrderProcessor(lambda: box, store, load_catalogue("")).process(key)
    runtime, client = console(tmp_path, monkeypatch)
    # When a viewer opens the Rejections page
    token = log_in(client, "viewer")
    page = client.get(REJECTIONS).get_data(as_text=True)
    # Then the subject and sender show as text, and there is no retry button
    assert "mallory@evil.example" in page and "no .csv or .xlsx attachment" in page
    assert all(subject not in page for subject in XSS_SUBJECTS)
    assert "&lt;script&gt;window.xss=1&lt;/script&gt;" in page and "&lt;img src=x onerror=" in page
    assert "retry-rejection" not in page
    # And a crafted POST is refused, leaving the rejection alone
    assert client.post(f"{REJECTIONS}/retry", data={"message_id": "<xss@shop>", "csrf_token": token}).status_code == 403
    assert store.outcome("<xss@shop>").kind == "rejected"
    # When an operator clicks retry
    client.post("/admin/logout", data={"csrf_token": token})
    token = log_in(client, "operator")
    assert 'class="retry-rejection"' in client.get(REJECTIONS).get_data(as_text=True)
    answer = client.post(f"{REJECTIONS}/retry", data={"message_id": "<xss@shop>", "csrf_token": token})
    # Then the mail is back in the inbox, unseen, the rejection gone, and the page says so
    assert answer.status_code == 302 and answer.headers["Location"].endswith(REJECTIONS)
    page = client.get(REJECTIONS).get_data(as_text=True)
    assert "&lt;xss@shop&gt;: its mail is back in the inbox, unseen" in page and "No rejections." in page
    assert box.unseen() == [key] and store.rejections() == {}
    event = runtime.actions.audit.recent(1)[0]
    assert (event.actor, event.action, event.outcome) == ("operator", "admin.mail_order_bot.rejections/retry", "ok")
    # And a retry without the CSRF token is refused
    assert client.post(f"{REJECTIONS}/retry", data={"message_id": "<xss@shop>"}).status_code == 400
    runtime.close()


def test_a_retry_that_cannot_be_done_says_why_in_one_line_and_is_audited_as_failed(tmp_path, monkeypatch) -> None:
    # Given a rejection whose mail is no longer in the rejects folder
    MaildirMailbox(tmp_path / "mail").create()
    store = OrderStore(tmp_path / "orders.sqlite")
    store.record_rejection("<lost@shop>", "no .csv or .xlsx attachment")
    runtime, client = console(tmp_path, monkeypatch)
    token = log_in(client, "operator")
    # When the operator retries it
    answer = client.post(f"{REJECTIONS}/retry", data={"message_id": "<lost@shop>", "csrf_token": token})
    # Then one line says why, the rejection stands, and the audit records the failure
    assert answer.status_code == 409
    assert "&lt;lost@shop&gt; stays rejected: its mail is no longer in the rejects folder" in answer.get_data(
        as_text=True)
    assert store.rejections() == {"<lost@shop>": "no .csv or .xlsx attachment"}
    event = runtime.actions.audit.recent(1)[0]
    assert (event.actor, event.outcome) == ("operator", "failed") and "no longer in the rejects folder" in event.detail
    runtime.close()


def test_retry_all_shown_sends_every_retryable_rejection_back_and_names_those_that_cannot(tmp_path, monkeypatch):
    # Given two rejected mails, and a rejection whose mail is gone
    box = MaildirMailbox(tmp_path / "mail")
    box.create()
    store = OrderStore(tmp_path / "orders.sqlite")
    processor = OrderProcessor(lambda: box, store, load_catalogue(""))
    keys = [box.deliver(order_mail(kind="none", message_id=f"<all-{n}@shop>")) for n in range(2)]
    for key in keys:
        processor.process(key)
    runtime, client = console(tmp_path, monkeypatch)
    token = log_in(client, "operator")
    page = client.get(REJECTIONS).get_data(as_text=True)
    assert "Retry all 2 shown" in page
    # When the operator retries all shown
    answer = client.post(f"{REJECTIONS}/retry", data={"message_id": ["<all-0@shop>", "<all-1@shop>"],
                                                      "csrf_token": token, "confirm_all": "on"})
    # Then both are back in the inbox, unseen, and no rejection is left
    assert answer.status_code == 302
    assert "2 rejections retried" in client.get(REJECTIONS).get_data(as_text=True)
    assert box.unseen() == sorted(keys) and store.rejections() == {}
    # And when one of several cannot be retried, the others are, and one line names the failure
    for key in keys:
        processor.process(key)
    store.record_rejection("<gone@shop>", "no .csv or .xlsx attachment")
    answer = client.post(f"{REJECTIONS}/retry", data={"message_id": ["<all-0@shop>", "<gone@shop>", "<all-1@shop>"],
                                                      "csrf_token": token})
    assert answer.status_code == 409
    assert "2 retried; &lt;gone@shop&gt; stays rejected: its mail is no longer in the rejects folder" in \
        answer.get_data(as_text=True)
    assert store.rejections() == {"<gone@shop>": "no .csv or .xlsx attachment"} and len(box.unseen()) == 2
    runtime.close()
