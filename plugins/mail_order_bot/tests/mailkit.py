"""Building order mails for tests: csv or xlsx attachments, or none."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from openpyxl import Workbook


def csv_bytes(lines: list[tuple[str, object]]) -> bytes:
    """A `sku,quantity` CSV."""
    return ("sku,quantity\r\n" + "".join(f"{sku},{qty}\r\n" for sku, qty in lines)).encode()


def xlsx_bytes(lines: list[tuple[str, object]]) -> bytes:
    """A one-sheet workbook with a `sku | quantity` header."""
    book = Workbook()
    sheet = book.active
    sheet.append(["sku", "quantity"])
    for sku, qty in lines:
        sheet.append([sku, qty])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def order_mail(lines: list[tuple[str, object]] | None = None, *, kind: str = "csv", message_id: str | None = None,
               sender: str = "Alice Buyer <alice@acme.example>", subject: str = "Order",
               attachment: bytes | None = None, filename: str | None = None,
               more: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    """A raw order mail; `kind` is csv, xlsx or none (no attachment); `more` adds (name, bytes) files."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "orders@shop.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="acme.example")
    msg.set_content("Please find our order attached.\n")
    if kind == "csv":
        msg.add_attachment(attachment if attachment is not None else csv_bytes(lines or []),
                           maintype="text", subtype="csv", filename=filename or "order.csv")
    elif kind == "xlsx":
        msg.add_attachment(attachment if attachment is not None else xlsx_bytes(lines or []),
                           maintype="application",
                           subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                           filename=filename or "order.xlsx")
    for name, content in more:
        msg.add_attachment(content, maintype="application", subtype="octet-stream", filename=name)
    return bytes(msg)
