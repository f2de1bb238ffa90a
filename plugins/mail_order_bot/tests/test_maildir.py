"""The Maildir source and the zero-setup default, end to end through the runtime."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from conftest import wait_until
from mailkit import order_mail

from mail_order_bot.mailboxes import MailboxError, MaildirMailbox
from mail_order_bot.store import OrderStore


def test_maildir_lists_new_and_unflagged_mail_and_marks_seen(tmp_path):
    # Given a maildir with two delivered messages
    maildir = MaildirMailbox(tmp_path / "mail")
    maildir.create()
    first, second = maildir.deliver(b"Subject: 1\r\n\r\n1"), maildir.deliver(b"Subject: 2\r\n\r\n2")
    assert maildir.unseen() == [first, second]
    # When one is marked seen and the other rejected
    maildir.mark_seen(first)
    maildir.reject(second)
    # Then neither is unseen, the first is in cur/ flagged S, the second in the rejects sub-maildir
    assert maildir.unseen() == []
    assert [p.name for p in (tmp_path / "mail" / "cur").iterdir()] == [f"{first}:2,S"]
    assert [p.name for p in (tmp_path / "mail" / ".Rejected" / "cur").iterdir()] == [f"{second}:2,S"]
    assert maildir.size(first) == 15 and maildir.read(first, 0, 100) == b"Subject: 1\r\n\r\n1"
    assert b"".join(maildir.chunks(first, 15, chunk=4)) == b"Subject: 1\r\n\r\n1"
    # And marking an already moved message again is harmless
    maildir.mark_seen(first)
    maildir.reject(second)


def test_a_missing_maildir_is_a_mailbox_error(tmp_path):
    # Given a path that is not a maildir, When connecting, Then a MailboxError says so
    with pytest.raises(MailboxError, match="not a maildir"):
        MaildirMailbox(tmp_path / "nothing").connect()


def test_zero_setup_seeds_the_maildir_and_stores_the_sample_orders(run_bot, tmp_path):
    # Given no maildir yet
    # When the bot runs with the default maildir source
    runtime = run_bot()
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: len(store.orders()) == 3 and len(store.rejections()) == 3, message="samples processed")
    # Then the three valid samples are priced orders and the three bad ones are rejected with reasons
    assert sorted(order.total for order in store.orders()) == [Decimal("58.40"), Decimal("87.30"), Decimal("90.74")]
    assert sorted(store.rejections().values()) == [
        "no .csv or .xlsx attachment",
        "order.csv row 3: unknown SKU 'FLUX-9000'",
        "order.xlsx row 2: quantity -2 must be positive",
    ]
    # And every mail is seen: valid ones in cur/, rejected ones in the rejects sub-maildir
    wait_until(lambda: not MaildirMailbox(tmp_path / "mail").unseen(), message="all mail seen")
    assert len(list((tmp_path / "mail" / "cur").iterdir())) == 3
    assert len(list((tmp_path / "mail" / ".Rejected" / "cur").iterdir())) == 3
    # And health reports the mailbox, database and freshness as ok
    components = runtime.health()["components"]
    assert {components[f"mail_order_bot.{part}"]["status"] for part in ("mailbox", "database", "freshness")} == {"ok"}


def test_an_existing_maildir_is_not_seeded_again(run_bot, tmp_path):
    # Given an existing, empty maildir
    MaildirMailbox(tmp_path / "mail").create()
    # When the bot runs and a mail is delivered
    run_bot()
    MaildirMailbox(tmp_path / "mail").deliver(order_mail([("WID-001", 1)], message_id="<only@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.orders(), message="the order")
    # Then only that mail became an order
    assert [order.message_id for order in store.orders()] == ["<only@x>"]
    assert store.rejections() == {}


def test_each_processed_mail_leaves_a_trace_with_its_milestones(run_bot, tmp_path):
    # Given a bot tracing to a JSONL file
    MaildirMailbox(tmp_path / "mail").create()
    traces = tmp_path / "traces.jsonl"
    run_bot(platform={"tracing": {"transport": "jsonl", "path": str(traces)}})
    # When one order mail arrives
    MaildirMailbox(tmp_path / "mail").deliver(order_mail([("WID-001", 1)], message_id="<traced@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.orders(), message="the order")
    # Then its trace starts at discovery and the task span records each milestone in order
    def task_span():
        spans = [json.loads(line) for line in traces.read_text().splitlines()] if traces.exists() else []
        return next((span for span in spans if span["name"].startswith("task ")
                     and len(span["messages"]) == 4), None)
    span = wait_until(task_span, message="the task span")
    assert [m["message"] for m in span["messages"]] == ["parsed", "validated", "stored", "marked seen"]
    spans = [json.loads(line) for line in traces.read_text().splitlines()]
    discovered = next(s for s in spans if s["name"] == "mail.discovered")
    assert discovered["trace_id"] == span["trace_id"]


def test_invalid_settings_are_all_reported(tmp_path, monkeypatch):
    # Given settings with several mistakes in the bot's section
    from plba import create_runtime
    from plba.errors import ConfigError

    import mail_order_bot.plugin as plugin

    monkeypatch.chdir(tmp_path)
    runtime = create_runtime(plugin, enable_http_control=False, settings={
        "mail_order_bot": {"source": "pigeon", "mode": "push", "workers": 0}})
    # When it is built
    with pytest.raises(ConfigError) as error:
        runtime.build()
    # Then every mistake is named
    text = str(error.value)
    assert "mail_order_bot.source" in text and "mail_order_bot.mode" in text and "mail_order_bot.workers" in text


def test_the_first_poll_is_at_start_and_stopping_does_not_wait_for_the_poll_interval(run_bot, tmp_path):
    # Given a bot polling its maildir once an hour, with one order waiting
    MaildirMailbox(tmp_path / "mail").create()
    MaildirMailbox(tmp_path / "mail").deliver(order_mail([("WID-001", 1)], message_id="<first@x>"))
    runtime = run_bot(poll_interval=3600)
    # When it starts, Then the first poll is at start, not an hour later
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.orders(), message="the order from the first poll")
    assert [s["name"] for s in runtime.scheduler.schedules()] == ["mail_order_bot.poll"]
    # And when the runtime stops, the schedule's thread has already ended
    runtime.stop(timeout=5)
    assert runtime.scheduler.join(timeout=0)


def test_a_stale_mail_check_degrades_health(run_bot):
    # Given a running bot whose last successful check is long past (the next is an hour away)
    runtime = run_bot(poll_interval=3600)
    watcher = runtime.services["mail_order_bot"].watcher
    wait_until(lambda: watcher.polls, message="the first poll")
    watcher.last_check -= 4 * 3600
    # When health is read, Then freshness is degraded (not critical) and names the age
    freshness = runtime.health()["components"]["mail_order_bot.freshness"]
    assert freshness["status"] == "degraded" and not freshness["critical"]
    assert "no successful check for mail" in freshness["detail"]
