"""Turning an order email into a validated, priced Order, or a RejectedOrder with the reason."""

from __future__ import annotations

import email
import email.header
import email.utils
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from email.message import Message
from typing import Any

from mail_order_bot.attachments import AttachmentError, RawLine, is_order_attachment, parse_attachment
from mail_order_bot.catalogue import Catalogue


class RejectedOrder(Exception):  # noqa: N818 - an outcome, not a malfunction: it reads as a verdict
    """The message can never become an order; `reason` says why, for the customer and the operator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class OrderLine:
    """A priced line."""

    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        """quantity x unit price."""
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class Order:
    """A validated, priced order keyed by the Message-ID of the mail that carried it."""

    message_id: str
    customer: str
    lines: tuple[OrderLine, ...]

    @property
    def total(self) -> Decimal:
        """The sum of the line amounts."""
        return sum((line.amount for line in self.lines), Decimal("0"))


@dataclass(frozen=True)
class OrderMail:
    """The parts of an order email the bot needs."""

    message_id: str
    customer: str
    message: Message

    def attachments(self) -> Iterator[tuple[str, bytes]]:
        """(file name, decoded content) of every part that carries a file name."""
        for part in self.message.walk():
            filename = part.get_filename()
            if filename and not part.is_multipart():
                yield _decode_words(filename), part.get_payload(decode=True) or b""


def read_mail(raw: bytes) -> OrderMail:
    """Parse a raw RFC 822 message; a mail without a Message-ID gets one derived from its bytes."""
    # The compat32 parser: policy.default's rich header objects cost more CPU than the whole rest of an order.
    message = email.message_from_bytes(raw)
    message_id = str(message.get("Message-ID") or "").strip()
    if not message_id:
        # Deterministic, so a re-delivered copy of the same bytes still makes one order.
        message_id = f"<sha256-{hashlib.sha256(raw).hexdigest()}@mail-order-bot>"
    _name, address = email.utils.parseaddr(str(message.get("From") or ""))
    return OrderMail(message_id, address.lower(), message)


def build_order(mail: OrderMail, catalogue: Catalogue) -> Order:
    """Validate and price the order in the mail's .csv/.xlsx attachments; raises RejectedOrder."""
    if not mail.customer:
        raise RejectedOrder("no sender address")
    raw_lines: list[RawLine] = []
    found = False
    for filename, content in mail.attachments():
        if not is_order_attachment(filename):
            continue
        found = True
        try:
            raw_lines.extend(parse_attachment(filename, content))
        except AttachmentError as exc:
            raise RejectedOrder(f"unreadable attachment: {exc}") from None
    if not found:
        raise RejectedOrder("no .csv or .xlsx attachment")
    return Order(mail.message_id, mail.customer, price_lines(raw_lines, catalogue))


def price_lines(raw_lines: list[RawLine], catalogue: Catalogue) -> tuple[OrderLine, ...]:
    """Validated, priced lines; the same SKU on several lines is summed into one."""
    quantities: dict[str, int] = {}
    for raw in raw_lines:
        if catalogue.get(raw.sku) is None:
            raise RejectedOrder(f"{raw.where}: unknown SKU {raw.sku!r}")
        quantities[raw.sku] = quantities.get(raw.sku, 0) + parse_quantity(raw)
    return tuple(OrderLine(sku, qty, catalogue.get(sku).unit_price) for sku, qty in quantities.items())


def parse_quantity(raw: RawLine) -> int:
    """A positive whole quantity, or RejectedOrder naming the line."""
    value = raw.quantity
    if isinstance(value, bool):
        value = None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # spreadsheets store 3 as 3.0
    if isinstance(value, str):
        value = int(value) if value.lstrip("+-").isdigit() else value
    if not isinstance(value, int):
        raise RejectedOrder(f"{raw.where}: quantity {_show(raw.quantity)} is not a whole number")
    if value <= 0:
        raise RejectedOrder(f"{raw.where}: quantity {value} must be positive")
    return value


def _decode_words(value: str) -> str:
    """A header value with RFC 2047 encoded words (=?utf-8?...?=) decoded."""
    return str(email.header.make_header(email.header.decode_header(value)))


def _show(value: Any) -> str:
    return "(empty)" if value in (None, "") else repr(value)
