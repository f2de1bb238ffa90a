"""The bot against a real Dovecot: polling, IDLE, rejects, redelivery, outages and volume."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from decimal import Decimal

import pytest
from conftest import PASSWORD, wait_until
from mailkit import order_mail

from mail_order_bot.config import BotConfig
from mail_order_bot.imap import ImapMailbox
from mail_order_bot.mailboxes import MailboxAuthError
from mail_order_bot.store import OrderStore


def imap_bot(run_bot, folder, mode="poll", **imap):
    """Start a bot reading `folder` over IMAP."""
    return run_bot(source="imap", mode=mode, imap=folder.settings(**imap))


def component(runtime, part):
    """The health reading of one of the bot's checks."""
    return runtime.health()["components"][f"mail_order_bot.{part}"]


def test_valid_orders_are_stored_and_bad_ones_moved_to_rejects(run_bot, folder, tmp_path):
    # Given two valid orders (csv and xlsx) and two bad ones in the folder
    folder.append(
        order_mail([("WID-001", 4)], message_id="<ok-csv@x>", subject="ok csv"),
        order_mail([("GAD-200", 2)], kind="xlsx", message_id="<ok-xlsx@x>", subject="ok xlsx"),
        order_mail(kind="none", message_id="<no-file@x>", subject="bad none"),
        order_mail([("ZZZ", 1)], message_id="<unknown@x>", subject="bad sku"),
    )
    # When the bot polls the folder
    imap_bot(run_bot, folder)
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: len(store.orders()) == 2 and folder.count(folder.rejects) == 2, message="all four handled")
    # Then the valid ones are priced orders
    assert {o.message_id: o.total for o in store.orders()} == {"<ok-csv@x>": Decimal("10.00"),
                                                               "<ok-xlsx@x>": Decimal("49.98")}
    # And the bad ones are recorded and moved to the rejects folder, seen
    assert set(store.rejections()) == {"<no-file@x>", "<unknown@x>"}
    assert sorted(folder.subjects(folder.rejects)) == ["bad none", "bad sku"]
    assert folder.unseen(folder.rejects) == []
    # And every processed mail left in the folder is seen
    assert sorted(folder.subjects()) == ["ok csv", "ok xlsx"]
    assert folder.unseen() == []


def test_a_redelivered_mail_makes_no_duplicate_order(run_bot, folder, tmp_path):
    # Given a bot that stored an order
    imap_bot(run_bot, folder)
    folder.append(order_mail([("WID-001", 1)], message_id="<same@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.orders() and not folder.unseen(), message="the first delivery")
    # When the same mail is delivered again
    folder.append(order_mail([("WID-001", 1)], message_id="<same@x>"))
    wait_until(lambda: folder.count() == 2 and not folder.unseen(), message="the copy to be seen")
    # Then there is still one order, and the copy is marked seen
    assert [o.message_id for o in store.orders()] == ["<same@x>"]


def test_idle_picks_up_a_new_mail_without_polling(run_bot, folder, tmp_path):
    # Given a bot in IDLE mode that would not poll again for minutes
    runtime = imap_bot(run_bot, folder, mode="idle", idle_timeout=600)
    wait_until(lambda: component(runtime, "mailbox")["status"] == "ok", message="the bot to connect")
    # When a mail arrives
    folder.append(order_mail([("LAMP-01", 1)], message_id="<idle@x>"))
    # Then the server's notification gets it stored and seen
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.orders() and not folder.unseen(), message="the order via IDLE")
    assert store.orders()[0].message_id == "<idle@x>"


def test_idle_still_picks_up_new_mail_after_a_rejection_expunged_one(run_bot, folder, tmp_path):
    # Given an IDLE bot that rejected a mail (its move to the rejects folder expunges it from the folder)
    runtime = imap_bot(run_bot, folder, mode="idle", idle_timeout=600)
    wait_until(lambda: component(runtime, "mailbox")["status"] == "ok", message="the bot to connect")
    folder.append(order_mail(kind="none", message_id="<first-bad@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.rejections() and folder.count(folder.rejects) == 1, message="the rejection")
    # When the next mail arrives (its EXISTS may come behind the EXPUNGE's leftovers in one read)
    folder.append(order_mail([("LAMP-01", 1)], message_id="<next@x>"))
    # Then it is stored at once, not at the next IDLE timeout
    wait_until(lambda: store.orders() and not folder.unseen(), message="the next order via IDLE")
    assert [o.message_id for o in store.orders()] == ["<next@x>"]


def test_idle_reconnects_after_the_connection_drops(run_bot, folder, tmp_path, dovecot):
    # Given a bot in IDLE mode, connected
    runtime = imap_bot(run_bot, folder, mode="idle", idle_timeout=600)
    wait_until(lambda: component(runtime, "mailbox")["status"] == "ok", message="the bot to connect")
    watcher = runtime.services["mail_order_bot"].watcher
    connects = watcher.connects
    # When the server drops every connection of the user
    dovecot.kick()
    wait_until(lambda: watcher.connects > connects, message="a reconnect")
    # Then a mail delivered afterwards is still picked up
    folder.append(order_mail([("NUT-M6", 2)], message_id="<after-drop@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.orders() and not folder.unseen(), message="the order after the drop")


def test_a_wrong_password_is_reported_clearly_without_the_password(run_bot, folder, caplog):
    # Given a bot with a wrong password
    wrong = "not-the-" + PASSWORD
    caplog.set_level(logging.DEBUG)
    runtime = imap_bot(run_bot, folder, password=wrong)
    watcher = runtime.services["mail_order_bot"].watcher
    # When it has tried to log in more than once
    wait_until(lambda: watcher.failures >= 2, message="two login attempts")
    # Then the mailbox check is unhealthy and says the login was refused
    mailbox = component(runtime, "mailbox")
    assert mailbox["status"] == "unhealthy" and mailbox["critical"]
    assert "login as 'orders'" in mailbox["detail"] and "refused" in mailbox["detail"]
    assert runtime.health()["status"] == "unhealthy"
    # And the log has exactly one error line for it, without a traceback or the password
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("mail_order_bot")]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert "check user and password" in errors[0].getMessage()
    assert all(wrong not in record.getMessage() and PASSWORD not in record.getMessage() for record in caplog.records)
    # And the runtime keeps running rather than crash-looping
    assert runtime.state in ("idle", "busy") and runtime.failure is None


def test_a_refused_login_raises_an_auth_error(dovecot):
    # Given IMAP settings with a wrong password
    imap = replace(BotConfig.from_settings().imap, host="127.0.0.1", port=dovecot.port, ssl=False, user="orders",
                   password="wrong")
    client = ImapMailbox(imap)
    # When connecting, Then the error is an auth error naming the user, not the password
    with pytest.raises(MailboxAuthError) as error:
        client.connect()
    assert "'orders'" in str(error.value) and "wrong" not in str(error.value)


def test_the_bot_rides_out_a_dovecot_restart(run_bot, folder, tmp_path, dovecot):
    # Given a running bot that processed an order
    runtime = imap_bot(run_bot, folder)
    folder.append(order_mail([("WID-001", 1)], message_id="<before@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: len(store.orders()) == 1, message="the first order")
    # When Dovecot stops
    dovecot.stop()
    try:
        # Then the mailbox turns unhealthy
        wait_until(lambda: component(runtime, "mailbox")["status"] == "unhealthy", message="the outage to show")
    finally:
        dovecot.start()
    # And once it is back, the bot reconnects and handles new mail
    folder.append(order_mail([("WID-002", 1)], message_id="<after@x>"))
    wait_until(lambda: len(store.orders()) == 2 and not folder.unseen(), timeout=60, message="the order after restart")
    wait_until(lambda: component(runtime, "mailbox")["status"] == "ok", message="the mailbox to be healthy again")


@pytest.mark.slow
def test_a_mailbox_with_500_messages_is_processed_exactly_once(run_bot, folder, tmp_path):
    # Given 500 order mails waiting
    folder.append(*(order_mail([("WID-001", n % 7 + 1)], message_id=f"<bulk-{n}@x>") for n in range(500)))
    # When the bot runs with three workers
    imap_bot(run_bot, folder)
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: len(store.orders()) == 500, timeout=120, message="500 orders")
    # Then each became one order, and all are seen
    assert len({o.message_id for o in store.orders()}) == 500
    wait_until(lambda: not folder.unseen(), message="all seen")


def test_a_message_is_queued_once_while_in_flight(run_bot, folder, tmp_path):
    # Given a bot whose processing is held up
    runtime = imap_bot(run_bot, folder, poll_interval=0.05)
    bot = runtime.services["mail_order_bot"]
    release = threading.Event()
    process = bot.processor.process
    calls = []

    def held(key):
        calls.append(key)
        release.wait(10)
        return process(key)

    bot.processor.process = held
    # When a mail arrives and the folder is polled many times while it is in flight
    folder.append(order_mail([("WID-001", 1)], message_id="<held@x>"))
    wait_until(lambda: calls, message="processing to start")
    polls = bot.watcher.polls
    wait_until(lambda: bot.watcher.polls > polls + 5, message="more polls")
    release.set()
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.orders() and not folder.unseen(), message="the order")
    # Then it was handed to a worker only once
    assert len(calls) == 1


def test_stopping_while_idling_does_not_wait_for_the_idle_timeout(run_bot, folder):
    # Given a bot idling with a ten-minute IDLE timeout
    runtime = imap_bot(run_bot, folder, mode="idle", idle_timeout=600)
    wait_until(lambda: component(runtime, "mailbox")["status"] == "ok", message="the bot to connect")
    source = runtime.services["mail_order_bot"].idle_worker
    workers = {w["name"] for w in runtime.status()["workers"]}
    assert "mail_order_bot.idle" in workers and "plba.scheduler" not in workers  # IDLE, no poll schedule
    # When the runtime stops
    runtime.stop(timeout=5)
    # Then the IDLE thread has already ended, logged out
    assert source.join(timeout=0)
    assert source.status().state == "stopped"


def test_an_oversized_mail_is_rejected_from_its_size_without_fetching_the_body(run_bot, folder, tmp_path):
    # Given a bot limited to 300 KB mails, and a 450 KB mail in the folder
    runtime = run_bot(source="imap", imap=folder.settings(), max_mail_bytes=300_000)
    bot = runtime.services["mail_order_bot"]
    reads = []
    client = bot.mailboxes.get
    bot.processor.mailbox = lambda: _spy(client(), reads)
    folder.append(order_mail(message_id="<huge@x>", subject="huge",
                             attachment=b"sku,quantity\r\n" + b"WID-001,1\r\n" * 30_000))
    store = OrderStore(tmp_path / "orders.sqlite")
    # When it is processed
    wait_until(lambda: store.rejections() and folder.count(folder.rejects) == 1, message="the rejection")
    # Then the server's RFC822.SIZE decided it, only the headers were fetched, and it moved to rejects
    reason = store.rejections()["<huge@x>"]
    assert reason.startswith("the mail is ") and reason.endswith("above the limit of 300,000 (max_mail_bytes)")
    assert reads == [(0, 256 * 1024)]
    assert folder.subjects(folder.rejects) == ["huge"]


def test_a_mail_larger_than_one_fetch_is_read_in_pieces(run_bot, folder, tmp_path):
    # Given an order mail of about 3 MB (a long note column), more than one partial fetch
    note = "x" * 100
    rows = "".join(f"WID-001,1,{note}\r\n" for _ in range(25_000))
    # When the bot reads it with room for it
    runtime = run_bot(source="imap", imap=folder.settings(), max_rows=30_000)
    bot = runtime.services["mail_order_bot"]
    reads = []
    client = bot.mailboxes.get
    bot.processor.mailbox = lambda: _spy(client(), reads)
    folder.append(order_mail(message_id="<long@x>", attachment=f"sku,quantity,note\r\n{rows}".encode()))
    store = OrderStore(tmp_path / "orders.sqlite")
    # Then the pieces, fetched one megabyte at a time, make the whole order (every row counted)
    wait_until(lambda: store.orders(), message="the order")
    assert store.orders()[0].lines[0][:2] == ("WID-001", 25_000)
    assert len(reads) >= 3 and all(length <= 1 << 20 for _offset, length in reads)


def _spy(client, reads):
    """The client, recording the (offset, length) of every partial fetch."""
    read = client.read

    def recorded(key, offset, length):
        reads.append((offset, length))
        return read(key, offset, length)

    client.read = recorded
    return client
