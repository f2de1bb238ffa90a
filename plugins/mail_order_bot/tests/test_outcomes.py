"""Every mail ends in exactly one recorded outcome: poison values, failures that persist, reused Message-IDs, limits."""

from __future__ import annotations

import re
import sqlite3

from conftest import wait_until
from mailkit import csv_bytes, order_mail, xlsx_bomb
from plba import Task

from mail_order_bot.mailboxes import MaildirMailbox
from mail_order_bot.store import OrderStore


def maildir(tmp_path) -> MaildirMailbox:
    """The bot's maildir under `tmp_path`, created empty (so no samples are seeded)."""
    box = MaildirMailbox(tmp_path / "mail")
    box.create()
    return box


def rejected_files(tmp_path) -> list[str]:
    """Keys of the mails moved to the rejects sub-maildir."""
    folder = tmp_path / "mail" / ".Rejected" / "cur"
    return sorted(path.name.split(":")[0] for path in folder.iterdir()) if folder.exists() else []


def count_calls(bot) -> list[str]:
    """Record every key the processor is handed from now on."""
    calls: list[str] = []
    process = bot.processor.process

    def counted(key):
        calls.append(key)
        return process(key)

    bot.processor.process = counted
    return calls


def test_a_quantity_too_large_to_store_is_a_rejection_not_a_loop(run_bot, tmp_path):
    # Given a running bot and a mail ordering 99999999999999999999999 widgets (beyond SQLite's integers)
    box = maildir(tmp_path)
    runtime = run_bot()
    calls = count_calls(runtime.services["mail_order_bot"])
    key = box.deliver(order_mail([("WID-001", "99999999999999999999999")], message_id="<poison@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    # When it is processed
    wait_until(lambda: store.rejections(), message="the rejection")
    # Then it is rejected with the limit named, moved to the rejects folder, and handled once
    assert store.rejections() == {"<poison@x>": "order.csv row 2: quantity '99999999999999999999999' is above "
                                                "the limit of 1,000,000 (max_quantity)"}
    wait_until(lambda: rejected_files(tmp_path) == [key], message="the move to rejects")
    polls = runtime.services["mail_order_bot"].watcher.polls
    wait_until(lambda: runtime.services["mail_order_bot"].watcher.polls > polls + 3, message="more polls")
    assert calls == [key]


def test_the_quantity_limit_is_a_setting(run_bot, tmp_path):
    box = maildir(tmp_path)
    run_bot(max_quantity=10)
    box.deliver(order_mail([("WID-001", 11)], message_id="<eleven@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.rejections(), message="the rejection")
    assert "quantity 11 is above the limit of 10 (max_quantity)" in store.rejections()["<eleven@x>"]


def test_an_unexpected_error_is_a_rejection_naming_it(run_bot, tmp_path):
    # Given a bot whose store fails on this order with an error no one foresaw
    box = maildir(tmp_path)
    runtime = run_bot()
    bot = runtime.services["mail_order_bot"]
    calls = count_calls(bot)
    save = bot.store.save_order

    def broken(order, digest=None):
        if order.message_id == "<odd@x>":
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return save(order, digest)

    bot.store.save_order = broken
    # When the mail is processed
    key = box.deliver(order_mail([("WID-001", 1)], message_id="<odd@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.rejections(), message="the rejection")
    # Then it ends, once, as a rejection that names the error, and no order half-stored
    assert store.rejections() == {
        "<odd@x>": "could not be processed (OverflowError: Python int too large to convert to SQLite INTEGER)"}
    assert store.orders() == []
    wait_until(lambda: rejected_files(tmp_path) == [key], message="the move to rejects")
    assert calls == [key]


def test_a_mail_whose_task_is_dead_lettered_stays_parked_until_the_task_is_requeued(run_bot, tmp_path):
    # Given a bot retrying twice, and a database that keeps failing for one order
    box = maildir(tmp_path)
    runtime = run_bot(platform={"queues": {"mail_order_bot": {"max_attempts": 2}}})
    bot = runtime.services["mail_order_bot"]
    calls = count_calls(bot)
    save = bot.store.save_order
    failing = [True]

    def locked(order, digest=None):
        if failing[0]:
            raise sqlite3.OperationalError("database is locked")
        return save(order, digest)

    bot.store.save_order = locked
    key = box.deliver(order_mail([("WID-001", 1)], message_id="<stuck@x>"))
    # When its task is dead-lettered
    wait_until(lambda: bot.queue.stats()["dead"] == 1, message="the dead task")
    # Then the mail is parked, with the reason, and later polls leave it alone
    store = OrderStore(tmp_path / "orders.sqlite")
    mailbox = bot.config.mailbox_id
    assert "dead-lettered after 2 attempt(s): OperationalError: database is locked" in store.parked(mailbox)[key]
    polls = bot.watcher.polls
    wait_until(lambda: bot.watcher.polls > polls + 3, message="more polls")
    assert calls == [key, key]
    assert box.unseen() == [key]
    # And when the database is back and the dead task is requeued (attempts reset), it is processed normally
    failing[0] = False
    [dead] = bot.queue.list_dead().tasks
    bot.queue.publish(Task(dead.name, dead.payload, id=dead.id))
    wait_until(lambda: store.orders(), message="the order")
    assert [order.message_id for order in store.orders()] == ["<stuck@x>"]
    wait_until(lambda: not box.unseen(), message="the mail seen")
    assert store.parked(mailbox) == {}


def test_a_mail_parked_when_the_process_ended_is_released_with_its_memory_queue(run_bot, tmp_path):
    # Given a parked mail left by a process whose memory queue (and its dead task) is gone
    box = maildir(tmp_path)
    key = box.deliver(order_mail([("WID-001", 1)], message_id="<left@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    store.park(f"maildir {tmp_path / 'mail'}", key, "task t1 dead-lettered")
    # When the bot starts with a memory queue, Then nothing could requeue it, so it is processed
    run_bot()
    wait_until(lambda: store.orders(), message="the order")
    assert store.parked(f"maildir {tmp_path / 'mail'}") == {}


def test_a_redelivery_is_skipped_but_a_different_order_reusing_the_message_id_is_kept(run_bot, tmp_path):
    # Given a stored order
    box = maildir(tmp_path)
    run_bot()
    first = order_mail([("WID-001", 1)], message_id="<reused@x>", subject="first")
    box.deliver(first)
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.orders() and not box.unseen(), message="the first order")
    # When the same mail is delivered again, and then a different order under the same Message-ID
    box.deliver(first)
    wait_until(lambda: not box.unseen(), message="the redelivery seen")
    box.deliver(order_mail([("GAD-100", 2)], message_id="<reused@x>", subject="second"))
    wait_until(lambda: len(store.orders()) == 2, message="the second order")
    # Then the redelivery made nothing and the second order is stored under a key derived from its content
    orders = {order.message_id: order.lines for order in store.orders()}
    assert orders.pop("<reused@x>")[0][:2] == ("WID-001", 1)
    [(derived, lines)] = orders.items()
    assert derived.startswith("<reused@x>#") and lines[0][:2] == ("GAD-100", 2)
    wait_until(lambda: not box.unseen(), message="every mail seen")
    # And a redelivery of the second is skipped too
    box.deliver(order_mail([("GAD-100", 2)], message_id="<reused@x>", subject="second"))
    wait_until(lambda: not box.unseen(), message="the second redelivery seen")
    assert len(store.orders()) == 2 and store.rejections() == {}


def test_a_corrected_order_under_the_message_id_of_a_rejected_one_is_stored(run_bot, tmp_path):
    box = maildir(tmp_path)
    run_bot()
    box.deliver(order_mail([("WID-001", -1)], message_id="<fixed@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.rejections(), message="the rejection")
    box.deliver(order_mail([("WID-001", 1)], message_id="<fixed@x>"))
    wait_until(lambda: store.orders(), message="the corrected order")
    assert store.orders()[0].message_id.startswith("<fixed@x>#")


def test_mails_beyond_the_limits_are_rejected_with_the_reason(run_bot, tmp_path):
    # Given a bot with small limits, and one mail beyond each of them
    box = maildir(tmp_path)
    run_bot(max_mail_bytes=300_000, max_attachment_bytes=100_000, max_rows=50)
    rows = [("WID-001", 1)] * 60
    box.deliver(order_mail(message_id="<big-mail@x>", attachment=b"sku,quantity\r\n" + b"WID-001,1\r\n" * 30_000))
    box.deliver(order_mail(message_id="<big-file@x>", attachment=b"sku,quantity\r\n" + b"WID-001,1\r\n" * 12_000))
    box.deliver(order_mail(message_id="<bomb@x>", kind="xlsx", attachment=xlsx_bomb(60_000_000)))
    box.deliver(order_mail(message_id="<rows@x>", attachment=csv_bytes(rows)))
    store = OrderStore(tmp_path / "orders.sqlite")
    # When they are processed
    wait_until(lambda: len(store.rejections()) == 4, message="four rejections")
    # Then each is rejected with the limit it broke, and moved to the rejects folder
    reasons = store.rejections()
    assert reasons["<big-mail@x>"].startswith("the mail is ") and "(max_mail_bytes)" in reasons["<big-mail@x>"]
    assert re.fullmatch(r"unreadable attachment: order.csv is 132,0\d\d bytes, above the limit of 100,000 "
                        r"\(max_attachment_bytes\)", reasons["<big-file@x>"])
    assert "order.xlsx: unpacks to 60,0" in reasons["<bomb@x>"] and "(max_xlsx_unpacked_bytes)" in reasons["<bomb@x>"]
    assert reasons["<rows@x>"] == "unreadable attachment: order.csv: more than 50 rows in the mail (max_rows)"
    wait_until(lambda: len(rejected_files(tmp_path)) == 4, message="the moves to rejects")
    assert store.orders() == []
