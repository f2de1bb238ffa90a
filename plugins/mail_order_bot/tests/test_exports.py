"""Spreadsheet exports as Excel and LibreOffice write them in several locales, and the XLSX limits."""

from __future__ import annotations

import pytest
from mailkit import stale_dimension, xlsx_bomb, xlsx_bytes

from mail_order_bot.attachments import AttachmentError, RowBudget, parse_attachment
from mail_order_bot.catalogue import load_catalogue
from mail_order_bot.limits import Limits
from mail_order_bot.orders import RejectedOrder, price_lines


def quantities(filename: str, content: bytes, limits: Limits | None = None) -> dict[str, int]:
    """The validated quantities by SKU that an attachment orders."""
    lines = parse_attachment(filename, content, limits or Limits())
    return {line.sku: line.quantity for line in price_lines(lines, load_catalogue(), limits)}


@pytest.mark.parametrize(("content", "expected"), [
    # Windows-1252 (English or German Excel on Windows), with a non-ASCII note column.
    ("sku,quantity,note\r\nWID-001,2,Größe M – blau\r\n".encode("cp1252"), {"WID-001": 2}),
    # Latin-1 bytes that Windows-1252 leaves undefined (0x81) still read.
    (b"sku,quantity,note\r\nWID-001,2,x\x81y\r\n", {"WID-001": 2}),
    # UTF-8 with a byte-order mark.
    ("\ufeffsku,quantity\r\nGAD-100,3\r\n".encode(), {"GAD-100": 3}),
    # Excel's "Unicode text": UTF-16 with a BOM, tab-delimited.
    ("sku\tquantity\r\nGAD-100\t4\r\n".encode("utf-16"), {"GAD-100": 4}),
    (b"\xfe\xff" + "sku\tquantity\r\nGAD-100\t4\r\n".encode("utf-16-be"), {"GAD-100": 4}),
    # European Excel: semicolons, decimal comma, dot as thousands separator.
    (b"sku;quantity;price\r\nWID-001;1.000;2,50\r\nGAD-100;3,0;12,00\r\n", {"WID-001": 1000, "GAD-100": 3}),
    # Excel's sep= first line, either way.
    (b"sep=;\r\nsku;quantity\r\nWID-001;5\r\n", {"WID-001": 5}),
    (b"sep=,\r\nsku,quantity\r\nWID-001,5\r\n", {"WID-001": 5}),
    # Thousands separators: a quoted 1,000 in a comma file, spaces (plain, no-break, narrow no-break).
    (b'sku,quantity\r\nWID-001,"1,000"\r\nGAD-100,"12,500"\r\n', {"WID-001": 1000, "GAD-100": 12500}),
    ("sku;quantity\r\nWID-001;1 000\r\nGAD-100;2\u00a0000\r\nLAMP-01;3\u202f000\r\n".encode(),
     {"WID-001": 1000, "GAD-100": 2000, "LAMP-01": 3000}),
    # Whole numbers with decimals, and both separators at once.
    (b'sku,quantity\r\nWID-001,3.0\r\nGAD-100,"1,234.00"\r\n', {"WID-001": 3, "GAD-100": 1234}),
    (b"sku;quantity\r\nWID-001;1.234,00\r\n", {"WID-001": 1234}),
    # Pipes, and the header not on the first line.
    (b"\r\nsku|quantity\r\nWID-001|7\r\n", {"WID-001": 7}),
])
def test_common_csv_exports_are_read(content, expected):
    # Given a CSV as a spreadsheet program exports it, When it is read, Then it orders what it says
    assert quantities("order.csv", content) == expected


@pytest.mark.parametrize(("content", "reason"), [
    (b"sku,quantity\r\nWID-001,3.5\r\n", "order.csv row 2: quantity '3.5' is not a whole number"),
    (b"sku;quantity\r\nWID-001;2,5\r\n", "order.csv row 2: quantity '2,5' is not a whole number"),
    # Tab-delimited files say nothing about their locale: 1.000 could be one or a thousand.
    ("sku\tquantity\r\nWID-001\t1.000\r\n".encode("utf-16"), "order.csv row 2: quantity '1.000' is ambiguous"),
    # A dot in a comma file is not that locale's thousands separator either.
    (b"sku,quantity\r\nWID-001,1.000\r\n", "order.csv row 2: quantity '1.000' is ambiguous"),
    (b"sku,quantity\r\nWID-001,99999999999999999999999\r\n", "above the limit of 1,000,000 (max_quantity)"),
    (b"sku,quantity\r\nWID-001,1e3\r\n", "order.csv row 2: quantity '1e3' is not a whole number"),
])
def test_quantities_that_stay_unclear_are_rejected_with_the_row(content, reason):
    # Given a CSV whose quantity cannot be read as one whole number, When it is priced, Then the reason names the row
    with pytest.raises(RejectedOrder) as rejected:
        quantities("order.csv", content)
    assert reason in rejected.value.reason


@pytest.mark.parametrize(("content", "message"), [
    (b"sku,quantity\r\nWID\x00,1\r\n", "order.csv: holds NUL bytes"),
    (b"\xff\xfes\x00k\x00u\x00\x00\xd8", "order.csv: not valid UTF-16 text after its byte-order mark"),
    (b"item;count\r\nWID-001;1\r\n", "order.csv: the header row must name 'sku' and 'quantity' columns"),
])
def test_unreadable_text_is_reported_naming_the_attachment(content, message):
    with pytest.raises(AttachmentError, match=message):
        parse_attachment("order.csv", content)


def test_rows_beyond_the_limit_are_not_read():
    # Given a CSV of 5,000 rows and a limit of 100 rows per mail
    content = b"sku,quantity\r\n" + b"WID-001,1\r\n" * 5000
    # When it is read, Then the reading stops with the reason
    with pytest.raises(AttachmentError, match=r"order.csv: more than 100 rows in the mail \(max_rows\)"):
        parse_attachment("order.csv", content, Limits(max_rows=100))


def test_the_row_limit_counts_every_attachment_of_the_mail():
    # Given two attachments of 60 rows and one budget of 100 rows
    budget = RowBudget(Limits(max_rows=100))
    content = b"sku,quantity\r\n" + b"WID-001,1\r\n" * 59
    parse_attachment("a.csv", content, Limits(max_rows=100), budget)
    # When the second is read, Then it goes over the mail's budget
    with pytest.raises(AttachmentError, match="b.csv: more than 100 rows"):
        parse_attachment("b.csv", content, Limits(max_rows=100), budget)


def test_a_stale_xlsx_dimension_is_not_trusted():
    # Given a sheet of 50 lines that declares it spans A1:B2
    content = stale_dimension([("WID-001", 1)] * 50)
    # When it is read, Then every line counts
    assert quantities("order.xlsx", content) == {"WID-001": 50}


def test_a_stale_xlsx_dimension_does_not_hide_rows_beyond_the_limit():
    content = stale_dimension([("WID-001", 1)] * 200)
    with pytest.raises(AttachmentError, match="more than 100 rows"):
        parse_attachment("order.xlsx", content, Limits(max_rows=100))


def test_an_xlsx_that_would_unpack_beyond_the_limit_is_refused_before_unpacking():
    # Given a 100 MB sheet packed into about 100 KB
    content = xlsx_bomb(100_000_000)
    assert len(content) < 1_000_000
    # When it is read, Then the declared size is refused
    with pytest.raises(AttachmentError, match=r"unpacks to 100,\d{3},\d{3} bytes, above the limit of 50,000,000"):
        parse_attachment("order.xlsx", content)


def test_an_xlsx_that_lies_about_its_unpacked_size_is_unreadable():
    # Given a bomb whose zip headers declare the sheet small
    content = xlsx_bomb(100_000_000, lie=True)
    # When it is read, Then unpacking stops at the declared size and the workbook is unreadable
    with pytest.raises(AttachmentError, match=r"not a readable .xlsx workbook \(BadZipFile\)"):
        parse_attachment("order.xlsx", content)


def test_xlsx_text_quantities_follow_the_same_rules():
    # Given quantities typed as text in a workbook, When read, Then grouped digits count and ambiguity is refused
    assert quantities("order.xlsx", xlsx_bytes([("WID-001", "1 000"), ("GAD-100", "3.0")])) == {
        "WID-001": 1000, "GAD-100": 3}
    with pytest.raises(RejectedOrder, match="order.xlsx row 2: quantity '1,000' is ambiguous"):
        quantities("order.xlsx", xlsx_bytes([("WID-001", "1,000")]))
