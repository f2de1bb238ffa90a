"""Building order mails for tests: csv or xlsx attachments, or none."""

from __future__ import annotations

import io
import re
import struct
import zipfile
from collections.abc import Callable
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


def xlsx_rewritten(content: bytes, sheet: Callable[[bytes], bytes]) -> bytes:
    """The workbook with its first sheet's XML passed through `sheet`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(content)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info.filename, sheet(data) if info.filename == "xl/worksheets/sheet1.xml" else data)
    return out.getvalue()


def stale_dimension(lines: list[tuple[str, object]], ref: str = "A1:B2") -> bytes:
    """A workbook holding `lines` whose sheet declares the dimension `ref` (as a stale writer leaves it)."""
    declared = f'<dimension ref="{ref}"'.encode()
    return xlsx_rewritten(xlsx_bytes(lines), lambda xml: re.sub(rb'<dimension ref="[^"]*"', declared, xml))


def xlsx_bomb(unpacked: int, lie: bool = False) -> bytes:
    """A valid order workbook whose sheet unpacks to about `unpacked` bytes of padding.

    With `lie`, the zip's headers declare the sheet a few hundred bytes long, as a crafted bomb would.
    """
    plain = zipfile.ZipFile(io.BytesIO(xlsx_bytes([("WID-001", 1)]))).read("xl/worksheets/sheet1.xml")
    content = xlsx_rewritten(xlsx_bytes([("WID-001", 1)]), lambda xml: xml + b" " * unpacked)
    if not lie:
        return content
    declared = struct.pack("<I", len(plain))
    real = struct.pack("<I", len(plain) + unpacked)
    # The uncompressed size sits at offset 22 of the local header and 24 of the central directory entry.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = content.find(signature)
        while at != -1:
            if content[at + offset:at + offset + 4] == real:
                content = content[:at + offset] + declared + content[at + offset + 4:]
            at = content.find(signature, at + 4)
    return content
