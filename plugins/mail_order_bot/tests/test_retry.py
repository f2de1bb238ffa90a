"""Retrying a rejection: the mail goes back to the inbox unseen, the rejection is cleared, the bot takes it up again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import wait_until
from mailkit import order_mail

from mail_order_bot.admin import find_rejections
from mail_order_bot.catalogue import load_catalogue
from mail_order_bot.imap import ImapMailbox
from mail_order_bot.mailboxes import MaildirMailbox
from mail_order_bot.processing import REJECTED, STORED, OrderProcessor
from mail_order_bot.retry import Retrier, RetryError, header_message_id, retry
from mail_order_bot.store import RETRYING, OrderStore


def maildir(tmp_path: Path) -> MaildirMailbox:
    """The bot's maildir, created empty (so it is not seeded with samples)."""
    box = MaildirMailbox(tmp_path / "mail")
    box.create()
    return box


def rejected_files(tmp_path: Path) -> list[str]:
    """Names of the files in the rejects sub-maildir."""
    folder = tmp_path / "mail" / ".Rejected" / "cur"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_maildir_restore_moves_only_that_message_id_back_unseen(tmp_path):
    # Given two rejected mails, one of them with a folded Message-ID header
    box = maildir(tmp_path)
    first = box.deliver(b"Message-ID: <one@x>\r\nSubject: 1\r\n\r\nbody")
    second = box.deliver(b"Subject: 2\r\nMessage-ID:\r\n <two@x>\r\n\r\nbody")
    box.reject(first)
    box.reject(second)
    # When the first is restored
    assert box.restore("<one@x>") == 1
    # Then it is unseen in new/ under its key, and the other one stays rejected
    assert box.unseen() == [first] and (tmp_path / "mail" / "new" / first).exists()
    assert rejected_files(tmp_path) == [f"{second}:2,S"]
    # And a Message-ID that is not (or no longer) in the rejects folder restores nothing
    assert box.restore("<one@x>") == 0 and box.restore("<on@x>") == 0
    assert box.restore("<two@x>") == 1 and rejected_files(tmp_path) == []
    assert MaildirMailbox(tmp_path / "never-rejected").restore("<one@x>") == 0


def test_the_header_message_id_of_a_record_key():
    assert header_message_id("<a#b@x>") == "<a#b@x>"
    assert header_message_id("<a@x>#0123456789abcdef") == "<a@x>"
    assert header_message_id(f"<sha256-{'0' * 64}@mail-order-bot>") is None
    assert header_message_id(f"<unreadable-{'0' * 64}@mail-order-bot>") is None


def test_a_rejection_fixed_by_a_setting_becomes_an_order_when_retried(run_bot, tmp_path):
    # Given a bot limited to 10 of an item, which rejected an order for 11
    box = maildir(tmp_path)
    runtime = run_bot(max_quantity=10)
    box.deliver(order_mail([("WID-001", 11)], message_id="<eleven@x>", subject="Order <b>11</b>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    wait_until(lambda: store.rejections() and rejected_files(tmp_path), message="the rejection")
    [row] = find_rejections(str(tmp_path / "orders.sqlite"))
    assert (row["subject"], row["sender"]) == ("Order <b>11</b>", "alice@acme.example")
    runtime.close()
    # When it is retried while the bot is stopped
    done = retry(store, box, "<eleven@x>")
    # Then the mail is back in the inbox, unseen, and the rejection is gone
    assert "back in the inbox, unseen" in done
    assert len(box.unseen()) == 1 and rejected_files(tmp_path) == []
    assert store.rejections() == {}
    # And once the limit is raised, the bot stores the order and marks the mail seen
    run_bot(max_quantity=20)
    wait_until(lambda: store.orders() and not box.unseen(), message="the order")
    assert [(o.message_id, o.lines[0][1]) for o in store.orders()] == [("<eleven@x>", 11)]
    assert store.rejections() == {} and rejected_files(tmp_path) == []


def test_a_retried_mail_still_invalid_is_rejected_afresh_by_the_running_bot(run_bot, tmp_path):
    # Given a running bot that rejected a mail for an unknown SKU
    box = maildir(tmp_path)
    run_bot()
    box.deliver(order_mail([("NOPE-1", 1)], message_id="<nope@x>"))
    store = OrderStore(tmp_path / "orders.sqlite")
    database = str(tmp_path / "orders.sqlite")
    wait_until(lambda: store.rejections() and rejected_files(tmp_path), message="the rejection")
    [before] = find_rejections(database)
    # When it is retried while the bot runs
    retry(store, MaildirMailbox(tmp_path / "mail"), "<nope@x>")
    # Then the bot processes it again: a fresh rejection, the mail back in the rejects folder, seen
    wait_until(lambda: [r["created_at"] for r in find_rejections(database)] > [before["created_at"]]
               and rejected_files(tmp_path) and not box.unseen(), message="the fresh rejection")
    [after] = find_rejections(database)
    assert after["reason"] == before["reason"] == "order.csv row 2: unknown SKU 'NOPE-1'"
    assert after["retry_since"] is None and store.orders() == []


class ProcessedAtOnce(MaildirMailbox):
    """A maildir whose restore is followed at once by the bot processing the mail, before the retry finishes."""

    processor: OrderProcessor
    outcomes: list[str]

    def restore(self, message_id: str) -> int:
        """Restore, then let the bot process what came back (as an IDLE bot may, that fast)."""
        moved = super().restore(message_id)
        self.outcomes += [self.processor.process(key) for key in self.unseen()]
        return moved


@pytest.mark.parametrize("max_quantity, outcome", [(10, REJECTED), (20, STORED)])
def test_the_bot_processing_the_mail_before_the_retry_finishes_keeps_its_outcome(tmp_path, max_quantity, outcome):
    # Given a mail rejected for ordering 11, and a bot that will take it up the moment it is back
    from mail_order_bot.limits import Limits

    box = ProcessedAtOnce(tmp_path / "mail")
    box.create()
    store = OrderStore(tmp_path / "orders.sqlite")
    catalogue = load_catalogue("")
    OrderProcessor(lambda: box, store, catalogue, limits=Limits(max_quantity=10)).process(
        box.deliver(order_mail([("WID-001", 11)], message_id="<race@x>")))
    assert store.outcome("<race@x>").kind == REJECTED
    box.processor = OrderProcessor(lambda: box, store, catalogue, limits=Limits(max_quantity=max_quantity))
    box.outcomes = []
    # When it is retried
    retry(store, box, "<race@x>")
    # Then the bot processed it afresh (not as a duplicate of its rejection), and the retry kept that outcome
    assert box.outcomes == [outcome]
    assert (store.outcome("<race@x>").kind, len(store.orders())) == (outcome, 1 if outcome == STORED else 0)
    assert box.unseen() == []


def test_a_mail_gone_from_the_rejects_folder_leaves_the_rejection_as_it_was(tmp_path):
    # Given a rejection whose mail someone deleted from the rejects folder
    box = maildir(tmp_path)
    store = OrderStore(tmp_path / "orders.sqlite")
    store.record_rejection("<gone@x>", "no .csv or .xlsx attachment")
    # When it is retried
    with pytest.raises(RetryError) as raised:
        retry(store, box, "<gone@x>")
    # Then one line says so and the rejection stands, not marked as retried
    assert str(raised.value) == (f"<gone@x> stays rejected: its mail is no longer in the rejects folder of "
                                 f"maildir {tmp_path / 'mail'}")
    assert store.rejections() == {"<gone@x>": "no .csv or .xlsx attachment"}
    assert store.outcome("<gone@x>").kind == REJECTED


def test_a_failed_move_leaves_the_mail_in_the_rejects_folder_and_the_rejection_standing(tmp_path):
    # Given a rejected mail, and an inbox that lost its new/ folder
    box = maildir(tmp_path)
    store = OrderStore(tmp_path / "orders.sqlite")
    OrderProcessor(lambda: box, store, load_catalogue("")).process(box.deliver(order_mail(kind="none",
                                                                                         message_id="<kept@x>")))
    shutil.rmtree(tmp_path / "mail" / "new")
    # When it is retried
    not_a_maildir = r"^<kept@x> stays rejected: .* is not a maildir \(needs new/, cur/ and tmp/\)$"
    with pytest.raises(RetryError, match=not_a_maildir):
        retry(store, box, "<kept@x>")
    # Then nothing moved and nothing was cleared
    assert len(rejected_files(tmp_path)) == 1
    assert store.outcome("<kept@x>").kind == REJECTED


def test_a_rejection_that_is_not_there_or_has_no_message_id_is_refused(tmp_path):
    store = OrderStore(tmp_path / "orders.sqlite")
    box = maildir(tmp_path)
    with pytest.raises(RetryError, match="^<none@x> is not rejected"):
        retry(store, box, "<none@x>")
    made_up = f"<sha256-{'0' * 64}@mail-order-bot>"
    store.record_rejection(made_up, "no .csv or .xlsx attachment")
    with pytest.raises(RetryError, match="the mail had no Message-ID to find it by"):
        retry(store, box, made_up)
    assert store.outcome(made_up).kind == REJECTED


def test_a_store_marks_a_retry_and_a_new_outcome_replaces_it(tmp_path):
    store = OrderStore(tmp_path / "orders.sqlite")
    store.record_rejection("<m@x>", "first", "d1", "subject", "a@b")
    mark = store.begin_retry("<m@x>")
    assert store.outcome("<m@x>").kind == RETRYING and store.begin_retry("<other@x>") is None
    # The bot rejecting it again replaces the marked row; the retry then deletes nothing
    assert store.record_rejection("<m@x>", "second", "d1")
    assert not store.record_rejection("<m@x>", "third", "d1")
    assert not store.finish_retry("<m@x>", mark)
    assert store.rejections() == {"<m@x>": "second"} and store.outcome("<m@x>").kind == REJECTED


def test_a_real_imap_retry_brings_the_mail_back_unseen_and_the_idle_bot_takes_it_up(run_bot, folder, tmp_path):
    # Given an IDLE bot limited to 10 of an item, which rejected an order for 11
    store = OrderStore(tmp_path / "orders.sqlite")
    runtime = run_bot(source="imap", mode="idle", imap=folder.settings(), max_quantity=10)
    folder.append(order_mail([("WID-001", 11)], message_id="<imap-eleven@x>", subject="eleven"))
    wait_until(lambda: store.rejections() and folder.count(folder.rejects) == 1, message="the rejection")
    assert folder.unseen(folder.rejects) == [] and folder.count() == 0
    mailbox = ImapMailbox(runtime.services["mail_order_bot"].config.imap)
    [before] = find_rejections(str(tmp_path / "orders.sqlite"))
    # When it is retried while the bot runs
    retry(store, mailbox, "<imap-eleven@x>")
    # Then the IDLE bot takes it up at once and rejects it afresh (the limit still stands)
    wait_until(lambda: [r["created_at"] for r in find_rejections(str(tmp_path / "orders.sqlite"))]
               > [before["created_at"]] and folder.count(folder.rejects) == 1, message="the fresh rejection")
    assert store.outcome("<imap-eleven@x>").kind == REJECTED
    runtime.close()
    # When it is retried with the bot stopped
    retry(store, mailbox, "<imap-eleven@x>")
    # Then it is back in the folder, unseen, the rejects folder is empty and the rejection gone
    assert len(folder.unseen()) == 1 and folder.subjects() == ["eleven"]
    assert folder.count(folder.rejects) == 0 and store.rejections() == {}
    # And the bot, with the limit raised, stores the order and marks the mail seen
    run_bot(source="imap", mode="idle", imap=folder.settings(), max_quantity=20)
    wait_until(lambda: store.orders() and not folder.unseen(), message="the order")
    assert [o.message_id for o in store.orders()] == ["<imap-eleven@x>"] and store.rejections() == {}
    # And a Message-ID no longer in the rejects folder is said to be so
    store.record_rejection("<imap-gone@x>", "no .csv or .xlsx attachment")
    with pytest.raises(RetryError, match="no longer in the rejects folder of imap orders@127.0.0.1"):
        retry(store, mailbox, "<imap-gone@x>")


class CountingConnects(MaildirMailbox):
    """A maildir that counts how often it is connected to."""

    connects = 0

    def connect(self) -> None:
        """Count, then connect."""
        self.connects += 1
        super().connect()


def rejected(tmp_path: Path, message_ids: list[str]) -> tuple[CountingConnects, OrderStore]:
    """A maildir (its connects counted from zero) and a store in which the bot rejected a mail for each id."""
    box = CountingConnects(tmp_path / "mail")
    box.create()
    store = OrderStore(tmp_path / "orders.sqlite")
    processor = OrderProcessor(lambda: box, store, load_catalogue(""))
    for message_id in message_ids:
        processor.process(box.deliver(order_mail(kind="none", message_id=message_id)))
    box.connects = 0
    return box, store


def test_retrying_several_rejections_connects_to_the_mailbox_once(tmp_path):
    # Given three rejected mails and one that has no rejection
    box, store = rejected(tmp_path, [f"<batch-{n}@x>" for n in range(3)])
    # When all four are retried through one Retrier
    with Retrier(store, box) as retrier:
        done = [retrier.retry(f"<batch-{n}@x>") for n in range(3)]
        with pytest.raises(RetryError, match="^<batch-9@x> is not rejected"):
            retrier.retry("<batch-9@x>")
    # Then the three are back over one connection
    assert box.connects == 1 and len(done) == 3 and len(box.unseen()) == 3
    assert rejected_files(tmp_path) == [] and store.rejections() == {}


def test_a_mailbox_that_cannot_be_opened_is_tried_once_for_a_batch_and_every_rejection_stands(tmp_path):
    # Given two rejected mails, and an inbox that lost its new/ folder
    box, store = rejected(tmp_path, ["<down-0@x>", "<down-1@x>"])
    shutil.rmtree(tmp_path / "mail" / "new")
    # When both are retried
    errors = []
    with Retrier(store, box) as retrier:
        for n in range(2):
            with pytest.raises(RetryError) as raised:
                retrier.retry(f"<down-{n}@x>")
            errors.append(str(raised.value))
    # Then the mailbox was tried once, each line names its mail and why, and both rejections stand
    assert box.connects == 1
    assert [error.split(" stays rejected: ")[0] for error in errors] == ["<down-0@x>", "<down-1@x>"]
    assert all(error.endswith("is not a maildir (needs new/, cur/ and tmp/)") for error in errors)
    assert len(rejected_files(tmp_path)) == 2
    assert {store.outcome(f"<down-{n}@x>").kind for n in range(2)} == {REJECTED}
