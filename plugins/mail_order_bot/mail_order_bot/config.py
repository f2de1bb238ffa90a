"""Typed configuration of the `[mail_order_bot]` settings section, with its validators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mail_order_bot.mailboxes import ImapSettings

if TYPE_CHECKING:
    from dynaconf import Validator

SECTION = "mail_order_bot"
NUMBER = (int, float)


def validators() -> list[Validator]:
    """Dynaconf validators for the section; the runtime reports every failure at once."""
    # Imported here: dynaconf is heavy, and `plba plugins list` imports this module just to list it.
    from dynaconf import Validator

    s = SECTION
    # must_exist: without it the guard passes when `source` is unset, and unset means maildir.
    imap = Validator(f"{s}.source", must_exist=True, eq="imap")
    return [
        Validator(f"{s}.source", is_in=["maildir", "imap"]),
        Validator(f"{s}.mode", is_in=["poll", "idle"]),
        Validator(f"{s}.poll_interval", is_type_of=NUMBER, gt=0),
        Validator(f"{s}.workers", is_type_of=int, gte=1),
        Validator(f"{s}.database", is_type_of=str, len_min=1),
        Validator(f"{s}.catalogue", is_type_of=str),
        Validator(f"{s}.maildir", is_type_of=str, len_min=1),
        Validator(f"{s}.imap.host", f"{s}.imap.user", must_exist=True, is_type_of=str, len_min=1, when=imap),
        Validator(f"{s}.imap.port", is_type_of=int, gte=1, lte=65535),
        Validator(f"{s}.imap.ssl", is_type_of=bool),
        Validator(f"{s}.imap.folder", f"{s}.imap.rejects_folder", is_type_of=str, len_min=1),
        # RFC 2177: re-issue IDLE at least every 29 minutes or the server may log the client off.
        Validator(f"{s}.imap.idle_timeout", is_type_of=NUMBER, gt=0, lte=29 * 60),
        Validator(f"{s}.imap.timeout", is_type_of=NUMBER, gt=0),
    ]


@dataclass(frozen=True)
class BotConfig:
    """The bot's settings, with the documented defaults."""

    source: str = "maildir"
    mode: str = "poll"
    poll_interval: float = 5.0
    workers: int = 3
    database: str = "var/orders.sqlite"
    catalogue: str = ""
    maildir: str = "var/mail"
    imap: ImapSettings = field(default_factory=lambda: ImapSettings(host="imap.example.com"))
    idle_timeout: float = 290.0

    @property
    def idle(self) -> bool:
        """Whether discovery uses IMAP IDLE (only meaningful for an IMAP source)."""
        return self.source == "imap" and self.mode == "idle"

    @classmethod
    def from_settings(cls, settings: Any) -> BotConfig:
        """Read the section from a Dynaconf-like object (`settings.get("a.b", default)`)."""
        def get(key: str, default: Any) -> Any:
            value = settings.get(f"{SECTION}.{key}", default)
            return default if value is None else value

        imap = ImapSettings(
            host=str(get("imap.host", "imap.example.com")),
            port=int(get("imap.port", 993)),
            ssl=bool(get("imap.ssl", True)),
            user=str(get("imap.user", "")),
            password=str(get("imap.password", "")),
            folder=str(get("imap.folder", "INBOX")),
            rejects_folder=str(get("imap.rejects_folder", "Rejected")),
            timeout=float(get("imap.timeout", 30.0)),
        )
        return cls(
            source=str(get("source", "maildir")),
            mode=str(get("mode", "poll")),
            poll_interval=float(get("poll_interval", 5.0)),
            workers=int(get("workers", 3)),
            database=str(get("database", "var/orders.sqlite")),
            catalogue=str(get("catalogue", "")),
            maildir=str(get("maildir", "var/mail")),
            imap=imap,
            idle_timeout=float(get("imap.idle_timeout", 290.0)),
        )

    def where(self) -> str:
        """Where mail is read from, for logs (never the password)."""
        if self.source == "imap":
            return f"imap {self.imap.user}@{self.imap.host}:{self.imap.port}/{self.imap.folder} ({self.mode})"
        return f"maildir {self.maildir}"
