"""Reading order lines (sku, quantity) out of .csv and .xlsx attachments, within the row and size limits."""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mail_order_bot.limits import Limits

SUPPORTED_SUFFIXES = (".csv", ".xlsx")
# Field delimiters of the exports people send: English Excel, European Excel, "Unicode text", and pipes.
DELIMITERS = (",", ";", "\t", "|")
# What a file's delimiter says about its locale's thousands separator: a comma-separated file writes
# 1,000 (quoted), a semicolon-separated one (a decimal-comma locale) writes 1.000.
THOUSANDS = {",": ",", ";": "."}
BOMS = ((codecs.BOM_UTF8, "utf-8-sig", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
        (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"))
SEP_LINE = re.compile(r"\s*sep=(.)\s*", re.IGNORECASE)
SAMPLE = 64 * 1024


class AttachmentError(ValueError):
    """An attachment cannot be read as order lines; the message says which file and why."""


@dataclass(frozen=True)
class RawLine:
    """One order line as written by the customer: quantity is not validated yet.

    `thousands` is the thousands separator the file's locale implies (None when it cannot tell).
    """

    sku: str
    quantity: Any
    where: str
    thousands: str | None = None


class RowBudget:
    """Counts the rows read from one mail's attachments and stops the reading at `max_rows`."""

    def __init__(self, limits: Limits) -> None:
        self.limit = limits.max_rows
        self.used = 0

    def take(self, filename: str) -> None:
        """Count one more row; AttachmentError once the mail holds more than the limit."""
        self.used += 1
        if self.used > self.limit:
            raise AttachmentError(f"{filename}: more than {self.limit:,} rows in the mail (max_rows)")


def is_order_attachment(filename: str | None) -> bool:
    """Whether a file name looks like an order sheet this bot reads."""
    return filename is not None and filename.lower().endswith(SUPPORTED_SUFFIXES)


def parse_attachment(filename: str, content: bytes, limits: Limits | None = None,
                     budget: RowBudget | None = None) -> list[RawLine]:
    """The order lines of one attachment, by its file type."""
    limits = limits or Limits()
    budget = budget or RowBudget(limits)
    if filename.lower().endswith(".xlsx"):
        return parse_xlsx(filename, content, limits, budget)
    return parse_csv(filename, content, budget)


def parse_csv(filename: str, content: bytes, budget: RowBudget) -> list[RawLine]:
    """Lines of a CSV with a header naming `sku` and `quantity` columns (others are ignored).

    The encoding is read from a byte-order mark, else UTF-8, else Windows-1252; the delimiter from a
    `sep=` first line (Excel's convention), else from the header row, with csv.Sniffer breaking a tie.
    """
    text = _decode(filename, content)
    if not text.strip():
        raise AttachmentError(f"{filename}: empty")
    stream = io.StringIO(text)
    first = stream.readline()
    declared = SEP_LINE.fullmatch(first.rstrip("\r\n"))
    if declared:
        delimiter = declared.group(1)
    else:
        stream.seek(0)
        delimiter = _delimiter(filename, text[:SAMPLE])
    rows = csv.reader(stream, delimiter=delimiter)
    return _lines(filename, _checked(filename, rows), budget, THOUSANDS.get(delimiter))


def parse_xlsx(filename: str, content: bytes, limits: Limits, budget: RowBudget) -> list[RawLine]:
    """Lines of the first worksheet, whose first non-empty row names `sku` and `quantity`.

    The unpacked size is checked before anything is decompressed: zipfile stops each member at its
    declared size (and fails its CRC beyond), so a bomb that lies about its sizes cannot unpack more.
    The sheet's `<dimension>` is ignored: rows are read until the sheet (or the row budget) ends.
    """
    # openpyxl is imported here because only .xlsx orders need it and it is slow to import.
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise AttachmentError(f"{filename}: not a readable .xlsx workbook ({type(exc).__name__})") from None
    if unpacked > limits.max_xlsx_unpacked_bytes:
        raise AttachmentError(f"{filename}: unpacks to {unpacked:,} bytes, above the limit of "
                              f"{limits.max_xlsx_unpacked_bytes:,} (max_xlsx_unpacked_bytes)")
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        try:
            sheet = workbook.worksheets[0]
            sheet.reset_dimensions()  # a stale <dimension> would cut the rows short
            return _lines(filename, (list(row) for row in sheet.iter_rows(values_only=True)), budget, None)
        finally:
            workbook.close()
    except AttachmentError:
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on a malformed workbook
        raise AttachmentError(f"{filename}: not a readable .xlsx workbook ({type(exc).__name__})") from None


def _decode(filename: str, content: bytes) -> str:
    for bom, codec, label in BOMS:
        if content.startswith(bom):
            try:
                return content.decode(codec)
            except UnicodeDecodeError:
                raise AttachmentError(f"{filename}: not valid {label} text after its byte-order mark") from None
    if b"\0" in content:
        raise AttachmentError(f"{filename}: holds NUL bytes: not text, or UTF-16 without a byte-order mark")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # What Excel writes on Western Windows. It leaves five bytes of 0x80-0x9F undefined, where
    # Latin-1 (identical to it elsewhere) reads control characters instead.
    try:
        return content.decode("cp1252")
    except UnicodeDecodeError:
        return content.decode("latin-1")


def _delimiter(filename: str, sample: str) -> str:
    """The delimiter that makes the first non-blank row a header naming `sku` and `quantity`."""
    fits = [d for d in DELIMITERS if _is_header(_first_row(sample, d))]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise AttachmentError(f"{filename}: the header row must name 'sku' and 'quantity' columns")
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(fits)).delimiter
    except csv.Error:
        raise AttachmentError(f"{filename}: cannot tell whether its columns are separated by "
                              f"{' or '.join(repr(d) for d in fits)}; add a first line sep=, or sep=;") from None


def _first_row(sample: str, delimiter: str) -> list[str]:
    try:
        return next((row for row in csv.reader(io.StringIO(sample), delimiter=delimiter) if not _blank(row)), [])
    except csv.Error:
        return []


def _is_header(row: list[Any]) -> bool:
    columns = _columns(row)
    return "sku" in columns and "quantity" in columns


def _columns(row: list[Any]) -> list[str]:
    return [str(cell).strip().lower() if cell is not None else "" for cell in row]


def _checked(filename: str, rows: Iterator[list[str]]) -> Iterator[list[str]]:
    """The CSV rows, with a malformed one reported as an AttachmentError naming its row."""
    number = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            raise AttachmentError(f"{filename} row {number + 1}: not valid CSV ({exc})") from None
        number += 1
        yield row


def _lines(filename: str, rows: Iterable[list[Any]], budget: RowBudget, thousands: str | None) -> list[RawLine]:
    header: list[str] | None = None
    lines = []
    for number, row in enumerate(rows, start=1):
        budget.take(filename)
        if _blank(row):
            continue
        if header is None:
            header = _columns(row)
            if "sku" not in header or "quantity" not in header:
                raise AttachmentError(f"{filename}: the header row must name 'sku' and 'quantity' columns")
            sku_col, qty_col = header.index("sku"), header.index("quantity")
            continue
        sku = _cell(row, sku_col)
        quantity = _cell(row, qty_col)
        sku = "" if sku is None else str(sku).strip()
        if not sku:
            raise AttachmentError(f"{filename} row {number}: no SKU")
        quantity = quantity.strip() if isinstance(quantity, str) else quantity
        lines.append(RawLine(sku, quantity, f"{filename} row {number}", thousands))
    if header is None:
        raise AttachmentError(f"{filename}: empty")
    if not lines:
        raise AttachmentError(f"{filename}: no order lines under the header")
    return lines


def _cell(row: list[Any], index: int) -> Any:
    return row[index] if index < len(row) else None


def _blank(row: list[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in row)
