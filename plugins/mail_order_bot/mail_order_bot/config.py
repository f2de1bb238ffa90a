"""The `[mail_order_bot]` settings, declared once: validators, defaults and `BotConfig` all come from SETTINGS."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mail_order_bot.limits import Limits
from mail_order_bot.mailboxes import ImapSettings, MailboxClient, MaildirMailbox

if TYPE_CHECKING:
    from dynaconf import Validator

SECTION = "mail_order_bot"
NUMBER = (int, float)
IMAP = "imap."
# RFC 2177: re-issue IDLE at least every 29 minutes or the server may log the client off.
MAX_IDLE = 29 * 60


@dataclass(frozen=True)
class Setting:
    """One key of the section: its default, its meaning (for the README) and its dynaconf checks."""

    key: str
    kind: type
    default: Any
    help: str
    checks: dict[str, Any] = field(default_factory=dict)
    imap_required: bool = False

    @property
    def accepts(self) -> type | tuple[type, ...]:
        """The types a settings file may give: an int is fine where a float is expected."""
        return NUMBER if self.kind is float else self.kind

    @property
    def name(self) -> str:
        """The attribute it fills: the key without its `imap.` table."""
        return self.key.removeprefix(IMAP)


def _limit(key: str, help_text: str) -> Setting:
    return Setting(key, int, getattr(Limits, key), help_text, {"gte": 1})


SETTINGS: tuple[Setting, ...] = (
    Setting("source", str, "maildir", "`maildir` or `imap`", {"is_in": ["maildir", "imap"]}),
    Setting("mode", str, "poll", "`poll` or `idle` (IMAP only; ignored for a maildir)", {"is_in": ["poll", "idle"]}),
    Setting("poll_interval", float, 5.0, "seconds between checks when polling", {"gt": 0}),
    Setting("workers", int, 3, "processing threads", {"gte": 1}),
    Setting("database", str, "var/orders.sqlite", "SQLite file (WAL mode), created with its directory",
            {"len_min": 1}),
    Setting("catalogue", str, "", "CSV with `sku,name,unit_price`; empty uses the shipped sample catalogue"),
    Setting("maildir", str, "var/mail", "the Maildir for `source = \"maildir\"`; seeded with samples if missing",
            {"len_min": 1}),
    _limit("max_mail_bytes", "largest mail, checked before it is read"),
    _limit("max_attachment_bytes", "largest `.csv`/`.xlsx` attachment, decoded"),
    _limit("max_xlsx_unpacked_bytes", "largest unpacked size of an `.xlsx` (all its zip members)"),
    _limit("max_rows", "most rows read from the attachments of one mail, blank ones included"),
    _limit("max_quantity", "largest quantity of one SKU in an order"),
    Setting("imap.host", str, "", "server (required for `source = \"imap\"`)", imap_required=True),
    Setting("imap.port", int, 993, "port", {"gte": 1, "lte": 65535}),
    Setting("imap.ssl", bool, True, "implicit TLS; `false` only for a plaintext test server"),
    Setting("imap.user", str, "", "login (required for `source = \"imap\"`)", imap_required=True),
    Setting("imap.password", str, "", "put it in `.secrets.toml`; never logged or shown"),
    Setting("imap.folder", str, "INBOX", "folder to watch", {"len_min": 1}),
    Setting("imap.rejects_folder", str, "Rejected", "where rejected mail goes; created on first use", {"len_min": 1}),
    Setting("imap.idle_timeout", float, 290.0,
            f"seconds before IDLE is re-issued (at most {MAX_IDLE}: RFC 2177's 29 minutes)",
            {"gt": 0, "lte": MAX_IDLE}),
    Setting("imap.timeout", float, 30.0, "socket timeout in seconds", {"gt": 0}),
)


def validators() -> list[Validator]:
    """A validator with its default for every key (so no settings file is needed), plus the IMAP-only checks."""
    # Imported here: dynaconf is heavy, and `plba plugins list` imports this module just to list it.
    from dynaconf import Validator

    # must_exist: without it the guard passes when `source` is unset, and unset means maildir.
    imap = Validator(f"{SECTION}.source", must_exist=True, eq="imap")
    declared = [Validator(f"{SECTION}.{s.key}", default=s.default, is_type_of=s.accepts, **s.checks) for s in SETTINGS]
    required = [Validator(f"{SECTION}.{s.key}", len_min=1, when=imap,
                          messages={"operations": f"{{name}} is required when {SECTION}.source is imap"})
                for s in SETTINGS if s.imap_required]
    return declared + required


@dataclass(frozen=True)
class BotConfig:
    """The bot's settings, typed; build it with `from_settings` (defaults come from SETTINGS)."""

    source: str
    mode: str
    poll_interval: float
    workers: int
    database: str
    catalogue: str
    maildir: str
    imap: ImapSettings
    limits: Limits

    @property
    def idle(self) -> bool:
        """Whether discovery uses IMAP IDLE (only meaningful for an IMAP source)."""
        return self.source == "imap" and self.mode == "idle"

    @property
    def idle_timeout(self) -> float:
        """Seconds before IDLE is re-issued."""
        return self.imap.idle_timeout

    @classmethod
    def from_settings(cls, settings: Any = None) -> BotConfig:
        """Read the section from a Dynaconf-like object (`settings.get("a.b", default)`); None gives the defaults."""
        values: dict[str, dict[str, Any]] = {"top": {}, "imap": {}}
        for s in SETTINGS:
            value = settings.get(f"{SECTION}.{s.key}", s.default) if settings is not None else s.default
            # Coerced to the declared type: a file may give an int where a float is expected.
            values["imap" if s.key.startswith(IMAP) else "top"][s.name] = s.kind(s.default if value is None else value)
        top = values["top"]
        limit_names = {f.name for f in fields(Limits)}
        limits = Limits(**{name: top.pop(name) for name in limit_names})
        return cls(imap=ImapSettings(**values["imap"]), limits=limits, **top)

    @property
    def mailbox_id(self) -> str:
        """The mailbox the message keys belong to (never the password)."""
        if self.source == "imap":
            return f"imap {self.imap.user}@{self.imap.host}:{self.imap.port}/{self.imap.folder}"
        return f"maildir {self.maildir}"

    def mailbox(self) -> MailboxClient:
        """A fresh, unconnected mailbox client for the configured source."""
        if self.source == "imap":
            # imap-tools (and ssl) load only when the IMAP source is chosen.
            from mail_order_bot.imap import ImapMailbox

            return ImapMailbox(self.imap)
        return MaildirMailbox(self.maildir)

    def where(self) -> str:
        """Where mail is read from, for logs (never the password)."""
        return f"{self.mailbox_id} ({self.mode})" if self.source == "imap" else self.mailbox_id
