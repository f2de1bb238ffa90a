"""Validating and pricing an order mail, or rejecting it with a reason."""

from __future__ import annotations

import email
from decimal import Decimal
from email import encoders
from email.message import EmailMessage
from email.mime.application import MIMEApplication

import pytest
from mailkit import csv_bytes, order_mail

from mail_order_bot.catalogue import CatalogueError, load_catalogue, parse_catalogue
from mail_order_bot.limits import Limits
from mail_order_bot.mail import read_mail
from mail_order_bot.orders import RejectedOrder, build_order
from mail_order_bot.samples import sample_mails


@pytest.fixture
def catalogue():
    return load_catalogue()


def read(raw: bytes, limits: Limits | None = None):
    """The mail, read in small pieces as a mailbox hands it over."""
    return read_mail((raw[i:i + 100] for i in range(0, len(raw), 100)), limits or Limits())


def test_a_csv_order_is_priced_from_the_catalogue(catalogue):
    # Given a mail ordering 10 small widgets (2.50) and 2 gadgets (12.00)
    mail = read(order_mail([("WID-001", 10), ("GAD-100", 2)], message_id="<o1@acme.example>"))
    # When it is turned into an order
    order = build_order(mail, catalogue)
    # Then each line is priced and the total is exact
    assert order.message_id == "<o1@acme.example>"
    assert order.customer == "alice@acme.example"
    assert [(line.sku, line.quantity, line.unit_price) for line in order.lines] == [
        ("WID-001", 10, Decimal("2.50")), ("GAD-100", 2, Decimal("12.00"))]
    assert order.total == Decimal("49.00")


def test_an_xlsx_order_accepts_whole_float_quantities(catalogue):
    # Given a spreadsheet whose quantity cells are stored as floats
    mail = read(order_mail([("LAMP-01", 3.0)], kind="xlsx"))
    # When it is turned into an order, Then 3.0 counts as 3
    assert build_order(mail, catalogue).total == Decimal("117.00")


def test_repeated_skus_across_attachments_are_summed(catalogue):
    # Given a mail with two CSV attachments ordering the same SKU, and a picture
    raw = order_mail([("WID-001", 1)], more=(("more.csv", csv_bytes([("WID-001", 2)])), ("logo.png", b"\x89PNG")))
    # When it is turned into an order, Then there is one line for the SKU
    order = build_order(read(raw), catalogue)
    assert [(line.sku, line.quantity) for line in order.lines] == [("WID-001", 3)]


@pytest.mark.parametrize(("raw", "reason"), [
    (order_mail(kind="none"), "no .csv or .xlsx attachment"),
    (order_mail([("NOPE-1", 1)]), "order.csv row 2: unknown SKU 'NOPE-1'"),
    (order_mail([("WID-001", 0)]), "order.csv row 2: quantity 0 must be positive"),
    (order_mail([("WID-001", -4)], kind="xlsx"), "order.xlsx row 2: quantity -4 must be positive"),
    (order_mail([("WID-001", "2.5")]), "order.csv row 2: quantity '2.5' is not a whole number"),
    (order_mail([("WID-001", 2.5)], kind="xlsx"), "order.xlsx row 2: quantity 2.5 is not a whole number"),
    (order_mail([("WID-001", "")]), "order.csv row 2: quantity (empty) is not a whole number"),
    (order_mail(kind="csv", attachment=b"garbage"), "unreadable attachment: order.csv"),
    (order_mail([("WID-001", 1)], sender=""), "no sender address"),
])
def test_orders_that_can_never_succeed_are_rejected_with_a_reason(catalogue, raw, reason):
    # Given a mail that cannot become an order
    mail = read(raw)
    # When it is turned into an order
    with pytest.raises(RejectedOrder) as rejected:
        build_order(mail, catalogue)
    # Then the reason says why
    assert reason in rejected.value.reason


@pytest.mark.parametrize("encoded", [False, True])
def test_a_non_ascii_attachment_name_is_decoded(catalogue, encoded):
    # Given an attachment named with RFC 2231 parameters, or with an RFC 2047 encoded word
    raw = order_mail([("WID-001", 2)], filename="Bestellung-März.csv")
    if encoded:
        raw = raw.replace(b"filename*=utf-8''Bestellung-M%C3%A4rz.csv",
                          b'filename="=?utf-8?q?Bestellung-M=C3=A4rz.csv?="')
    # When it is turned into an order, Then the attachment is recognised
    assert build_order(read(raw), catalogue).total == Decimal("5.00")


def test_a_mail_without_message_id_gets_a_stable_one():
    # Given the same bytes without a Message-ID, twice
    raw = b"From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n"
    # When they are read, Then both get the same derived id
    assert read(raw).message_id == read(raw).message_id
    assert read(raw).message_id.startswith("<sha256-")


def test_the_shipped_samples_hold_three_orders_and_three_rejects(catalogue):
    # Given the sample mails shipped in the package
    outcomes = []
    for _name, raw in sample_mails():
        try:
            build_order(read(raw), catalogue)
            outcomes.append("order")
        except RejectedOrder:
            outcomes.append("rejected")
    # Then they cover valid and bad orders, including an .xlsx
    assert outcomes.count("order") == 3 and outcomes.count("rejected") == 3
    assert any(b".xlsx" in raw for _name, raw in sample_mails())


def test_a_custom_catalogue_is_read_from_csv(tmp_path):
    # Given a catalogue file
    path = tmp_path / "catalogue.csv"
    path.write_text("sku,name,unit_price\nX-1,Thing,1.25\n")
    # When it is loaded, Then its products are priced
    assert load_catalogue(path).get("X-1").unit_price == Decimal("1.25")


@pytest.mark.parametrize(("text", "message"), [
    ("sku,name\nX,Y\n", "missing column(s) unit_price"),
    ("sku,name,unit_price\nX,Y,cheap\n", "bad unit_price 'cheap'"),
])
def test_a_broken_catalogue_is_reported(text, message):
    # Given a malformed catalogue, When it is parsed, Then the error names the problem
    with pytest.raises(CatalogueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_catalogue(text, "cat.csv")


def test_a_missing_catalogue_file_is_reported(tmp_path):
    # Given a path that does not exist, When it is loaded, Then the error names it
    with pytest.raises(CatalogueError, match="nope.csv"):
        load_catalogue(tmp_path / "nope.csv")


def test_order_files_are_found_in_nested_parts_in_any_transfer_encoding(catalogue):
    # Given a forwarded mail (message/rfc822) carrying a base64 CSV, beside a quoted-printable and an 8bit one
    inner = order_mail([("WID-001", 1)], message_id="<inner@x>")
    outer = EmailMessage()
    outer["From"], outer["Message-ID"], outer["Subject"] = "bob@globex.example", "<outer@x>", "Fwd: order"
    outer.set_content("see the forwarded order\n")
    outer.add_attachment(email.message_from_bytes(inner))
    qp = MIMEApplication(b"sku,quantity\r\nGAD-100,2\r\n", "csv", _encoder=encoders.encode_quopri)
    qp.add_header("Content-Disposition", "attachment", filename="qp.csv")
    outer.attach(qp)
    raw = bytes(outer)
    eight = (b"Content-Type: text/csv\r\nContent-Transfer-Encoding: 8bit\r\n"
             b'Content-Disposition: attachment; filename="8bit.csv"\r\n\r\nsku,quantity\r\nLAMP-01,3\r\n')
    boundary = outer.get_boundary().encode()
    raw = raw.replace(b"--" + boundary + b"--", b"--" + boundary + b"\r\n" + eight + b"\r\n--" + boundary + b"--")
    # When it is read in small pieces, Then all three attachments make the order
    order = build_order(read(raw), catalogue)
    assert {(line.sku, line.quantity) for line in order.lines} == {("WID-001", 1), ("GAD-100", 2), ("LAMP-01", 3)}


def test_an_attachment_beyond_the_limit_is_measured_not_kept(catalogue):
    raw = order_mail(attachment=b"sku,quantity\r\n" + b"WID-001,1\r\n" * 1000)
    mail = read(raw, Limits(max_attachment_bytes=5_000))
    assert mail.files[0].content == b""
    assert mail.files[0].problem == "order.csv is 11,014 bytes, above the limit of 5,000 (max_attachment_bytes)"
