"""Turning an order mail into a validated, priced Order, or a RejectedOrder with the reason."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mail_order_bot.attachments import AttachmentError, RawLine, RowBudget, parse_attachment
from mail_order_bot.catalogue import Catalogue, Product
from mail_order_bot.limits import Limits
from mail_order_bot.mail import OrderMail

# Separators of digit groups that cannot be a decimal point: a space, a no-break space, the narrow
# no-break space (French) and the apostrophe (Swiss).
GROUP_SPACES = " \u00a0\u202f'"
SHOWN = 40


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
    """A validated, priced order, keyed by the Message-ID of the mail that carried it (or a key derived from it)."""

    message_id: str
    customer: str
    lines: tuple[OrderLine, ...]

    @property
    def total(self) -> Decimal:
        """The sum of the line amounts."""
        return sum((line.amount for line in self.lines), Decimal("0"))


def build_order(mail: OrderMail, catalogue: Catalogue, limits: Limits | None = None,
                key: str | None = None) -> Order:
    """Validate and price the order in the mail's .csv/.xlsx attachments, stored under `key`; raises RejectedOrder."""
    limits = limits or Limits()
    if mail.problem:
        raise RejectedOrder(mail.problem)
    if not mail.customer:
        raise RejectedOrder("no sender address")
    if not mail.files:
        raise RejectedOrder("no .csv or .xlsx attachment")
    raw_lines: list[RawLine] = []
    budget = RowBudget(limits)
    for file in mail.files:
        try:
            if file.problem:
                raise AttachmentError(file.problem)
            raw_lines.extend(parse_attachment(file.filename, file.content, limits, budget))
        except AttachmentError as exc:
            raise RejectedOrder(f"unreadable attachment: {exc}") from None
    return Order(key or mail.message_id, mail.customer, price_lines(raw_lines, catalogue, limits))


def price_lines(raw_lines: list[RawLine], catalogue: Catalogue, limits: Limits | None = None) -> tuple[OrderLine, ...]:
    """Validated, priced lines; the same SKU on several lines is summed into one."""
    limits = limits or Limits()
    quantities: dict[str, int] = {}
    products: dict[str, Product] = {}
    for raw in raw_lines:
        product = catalogue.get(raw.sku)
        if product is None:
            raise RejectedOrder(f"{raw.where}: unknown SKU {_show(raw.sku)}")
        products[raw.sku] = product
        total = quantities[raw.sku] = quantities.get(raw.sku, 0) + parse_quantity(raw, limits)
        if total > limits.max_quantity:
            raise RejectedOrder(f"{raw.where}: SKU {raw.sku!r} adds up to {total:,}, above the limit of "
                                f"{limits.max_quantity:,} (max_quantity)")
    return tuple(OrderLine(sku, qty, products[sku].unit_price) for sku, qty in quantities.items())


def parse_quantity(raw: RawLine, limits: Limits | None = None) -> int:
    """A positive whole quantity within `max_quantity`, or RejectedOrder naming the line.

    Text may group digits (`1,000`, `1.000` where the file's locale says so, `1 000`) and carry
    zero decimals (`3.0`, `3,00`); what could be read either way (`1.000` in a file of unknown
    locale) is rejected rather than guessed.
    """
    limits = limits or Limits()
    value = raw.quantity
    if isinstance(value, bool):
        value = None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # spreadsheets store 3 as 3.0
    if isinstance(value, str):
        value = _whole_number(raw, value, limits)
    if not isinstance(value, int):
        raise RejectedOrder(f"{raw.where}: quantity {_show(raw.quantity)} is not a whole number")
    if value <= 0:
        raise RejectedOrder(f"{raw.where}: quantity {value} must be positive")
    if value > limits.max_quantity:
        raise RejectedOrder(f"{raw.where}: quantity {_show(value)} is above the limit of "
                            f"{limits.max_quantity:,} (max_quantity)")
    return value


def _whole_number(raw: RawLine, text: str, limits: Limits) -> int | str:
    """The integer a quantity's text stands for, or the text itself when it is not a whole number."""
    sign, digits = (text[0], text[1:]) if text.startswith(("+", "-")) else ("", text)
    for space in GROUP_SPACES:
        if _grouped(digits, space):
            digits = digits.replace(space, "")
    commas, dots = digits.count(","), digits.count(".")
    if commas and dots:
        point = "," if digits.rfind(",") > digits.rfind(".") else "."
        group = "." if point == "," else ","
        whole, _, fraction = digits.rpartition(point)
        if not _grouped(whole, group):
            return text
        digits = f"{whole.replace(group, '')}.{fraction}"
    elif commas + dots > 1:
        separator = "," if commas else "."
        if not _grouped(digits, separator):
            return text
        digits = digits.replace(separator, "")
    elif commas + dots == 1:
        separator = "," if commas else "."
        whole, _, fraction = digits.partition(separator)
        if len(fraction) == 3 and re.fullmatch(r"[1-9]\d{0,2}", whole):
            # 1,000 or 1.000: a thousands separator or a decimal point with three decimals.
            if raw.thousands != separator:
                raise RejectedOrder(f"{raw.where}: quantity {text!r} is ambiguous ({whole} or {whole}{fraction}); "
                                    "write it without a thousands separator")
            digits = whole + fraction
        else:
            digits = f"{whole}.{fraction}"
    if not re.fullmatch(r"\d+(\.\d*)?|\.\d+", digits, re.ASCII):
        return text
    if len(digits.split(".")[0].lstrip("0")) > len(str(limits.max_quantity)):
        # Far beyond the limit: not worth converting (Python refuses ints of over 4,300 digits anyway).
        raise RejectedOrder(f"{raw.where}: quantity {_show(text)} is above the limit of "
                            f"{limits.max_quantity:,} (max_quantity)")
    number = Decimal(digits)
    return int(f"{sign}{number:f}".split(".")[0]) if number == number.to_integral_value() else text


def _grouped(digits: str, separator: str) -> bool:
    """Whether `digits` is 1 to 3 digits then groups of 3, separated by `separator` (at least once)."""
    return separator in digits and bool(re.fullmatch(rf"\d{{1,3}}(?:{re.escape(separator)}\d{{3}})+", digits, re.ASCII))


def _show(value: Any) -> str:
    if value in (None, ""):
        return "(empty)"
    shown = repr(value) if isinstance(value, str) else f"{value:,}" if isinstance(value, int) else repr(value)
    return shown if len(shown) <= SHOWN else shown[:SHOWN] + "..."
