"""Reading order lines (sku, quantity) out of .csv and .xlsx attachments."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SUPPORTED_SUFFIXES = (".csv", ".xlsx")


class AttachmentError(ValueError):
    """An attachment cannot be read as order lines; the message says which file and why."""


@dataclass(frozen=True)
class RawLine:
    """One order line as written by the customer: quantity is not validated yet."""

    sku: str
    quantity: Any
    where: str


def is_order_attachment(filename: str | None) -> bool:
    """Whether a file name looks like an order sheet this bot reads."""
    return bool(filename) and filename.lower().endswith(SUPPORTED_SUFFIXES)


def parse_attachment(filename: str, content: bytes) -> list[RawLine]:
    """The order lines of one attachment, by its file type."""
    if filename.lower().endswith(".xlsx"):
        return parse_xlsx(filename, content)
    return parse_csv(filename, content)


def parse_csv(filename: str, content: bytes) -> list[RawLine]:
    """Lines of a CSV with a header naming `sku` and `quantity` columns (others are ignored)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AttachmentError(f"{filename}: not UTF-8 text") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise AttachmentError(f"{filename}: not valid CSV ({exc})") from None
    return _lines(filename, rows)


def parse_xlsx(filename: str, content: bytes) -> list[RawLine]:
    """Lines of the first worksheet, whose first non-empty row names `sku` and `quantity`."""
    # openpyxl is imported here because only .xlsx orders need it and it is slow to import.
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise AttachmentError(f"{filename}: not a readable .xlsx workbook ({type(exc).__name__})") from None
    try:
        rows = [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
    finally:
        workbook.close()
    return _lines(filename, rows)


def _lines(filename: str, rows: Iterable[list[Any]]) -> list[RawLine]:
    numbered = [(number, row) for number, row in enumerate(rows, start=1) if not _blank(row)]
    if not numbered:
        raise AttachmentError(f"{filename}: empty")
    _, header = numbered[0]
    columns = [str(cell).strip().lower() if cell is not None else "" for cell in header]
    if "sku" not in columns or "quantity" not in columns:
        raise AttachmentError(f"{filename}: the header row must name 'sku' and 'quantity' columns")
    sku_col, qty_col = columns.index("sku"), columns.index("quantity")
    lines = []
    for number, row in numbered[1:]:
        sku = _cell(row, sku_col)
        quantity = _cell(row, qty_col)
        sku = "" if sku is None else str(sku).strip()
        if not sku:
            raise AttachmentError(f"{filename} row {number}: no SKU")
        quantity = quantity.strip() if isinstance(quantity, str) else quantity
        lines.append(RawLine(sku, quantity, f"{filename} row {number}"))
    if not lines:
        raise AttachmentError(f"{filename}: no order lines under the header")
    return lines


def _cell(row: list[Any], index: int) -> Any:
    return row[index] if index < len(row) else None


def _blank(row: list[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row)
