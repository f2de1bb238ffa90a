"""The sample order mails shipped with the package, used to seed a fresh Maildir."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mail_order_bot.mailboxes import MaildirMailbox


def sample_mails() -> list[tuple[str, bytes]]:
    """(file name, raw bytes) of every shipped sample mail, in name order."""
    folder = resources.files("mail_order_bot").joinpath("data/mails")
    return sorted((entry.name, entry.read_bytes()) for entry in folder.iterdir() if entry.name.endswith(".eml"))


def seed_maildir(root: str | Path) -> int:
    """Create the maildir with the sample mails if it does not exist yet; returns how many were added."""
    if Path(root).exists():
        return 0
    maildir = MaildirMailbox(root)
    maildir.create()
    for _name, raw in sample_mails():
        maildir.deliver(raw)
    return len(sample_mails())
