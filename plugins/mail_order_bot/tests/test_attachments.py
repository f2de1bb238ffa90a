"""Reading order lines from .csv and .xlsx attachments."""

from __future__ import annotations

import pytest
from mailkit import csv_bytes, xlsx_bytes

from mail_order_bot.attachments import AttachmentError, is_order_attachment, parse_attachment


def test_csv_lines_are_read_with_their_row_numbers():
    # Given a CSV with a header and two lines
    content = csv_bytes([("WID-001", 3), ("GAD-100", "2")])
    # When it is parsed
    lines = parse_attachment("order.csv", content)
    # Then each line keeps its SKU, raw quantity and where it came from
    assert [(line.sku, line.quantity, line.where) for line in lines] == [
        ("WID-001", "3", "order.csv row 2"), ("GAD-100", "2", "order.csv row 3")]


def test_csv_header_is_case_insensitive_and_extra_columns_are_ignored():
    # Given a CSV with extra columns in another order and a BOM
    content = "\ufeffNote, Quantity ,SKU\r\nurgent,5,WID-002\r\n\r\n".encode()
    # When it is parsed
    lines = parse_attachment("ORDER.CSV", content)
    # Then the sku and quantity columns are found and blank rows are skipped
    assert [(line.sku, line.quantity) for line in lines] == [("WID-002", "5")]


def test_xlsx_lines_are_read_from_the_first_sheet():
    # Given a workbook with integer and float quantities
    content = xlsx_bytes([("LAMP-01", 2), ("NUT-M6", 4.0)])
    # When it is parsed
    lines = parse_attachment("order.xlsx", content)
    # Then the cell values come through unchanged
    assert [(line.sku, line.quantity) for line in lines] == [("LAMP-01", 2), ("NUT-M6", 4.0)]


@pytest.mark.parametrize(("filename", "content", "message"), [
    ("order.csv", b"", "order.csv: empty"),
    ("order.csv", b"item,count\r\nA,1\r\n", "must name 'sku' and 'quantity'"),
    ("order.csv", b"sku,quantity\r\n", "no order lines"),
    ("order.csv", b"sku,quantity\r\n,3\r\n", "order.csv row 2: no SKU"),
    ("order.csv", b"sku,quantity\r\nA\x00,1\r\n", "holds NUL bytes"),
    ("order.xlsx", b"this is not a zip file", "not a readable .xlsx workbook"),
])
def test_unreadable_attachments_raise_a_clear_error(filename, content, message):
    # Given a broken attachment
    # When it is parsed
    with pytest.raises(AttachmentError) as error:
        parse_attachment(filename, content)
    # Then the error names the file and the problem
    assert message in str(error.value)


def test_only_csv_and_xlsx_files_are_order_attachments():
    # Given some attachment names, Then only .csv and .xlsx ones count
    assert is_order_attachment("Order.CSV") and is_order_attachment("po.xlsx")
    assert not is_order_attachment("logo.png") and not is_order_attachment(None)
