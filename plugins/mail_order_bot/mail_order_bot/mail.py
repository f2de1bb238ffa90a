"""Reading an order mail within the limits: its sender, Message-ID, order files and content digest."""

from __future__ import annotations

import email.errors
import email.header
import email.parser
import email.utils
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message

from mail_order_bot.attachments import is_order_attachment
from mail_order_bot.limits import Limits

# Enough for the headers of any sane mail; an oversized mail is judged on them alone.
HEADER_BYTES = 256 * 1024


@dataclass(frozen=True)
class OrderFile:
    """A .csv/.xlsx attachment, decoded; `problem` says why it was not (too large), with content left empty."""

    filename: str
    content: bytes
    problem: str | None = None


@dataclass(frozen=True)
class OrderMail:
    """The parts of an order email the bot needs; `problem` rejects it before its files are looked at."""

    message_id: str
    customer: str
    files: tuple[OrderFile, ...]
    digest: str
    problem: str | None = None


def read_mail(chunks: Iterable[bytes], limits: Limits) -> OrderMail:
    """Parse a raw RFC 822 message fed in pieces; a mail without a Message-ID gets one derived from its bytes."""
    # The compat32 parser: policy.default's rich header objects cost more CPU than the whole rest of an order.
    parser = email.parser.BytesFeedParser()
    whole = hashlib.sha256()
    for chunk in chunks:
        whole.update(chunk)
        parser.feed(chunk)
    message = parser.close()
    files = tuple(_order_files(message, limits))
    content = [f"{file.filename}\0{hashlib.sha256(file.content).hexdigest()}\0{file.problem or ''}" for file in files]
    return _mail(message, whole.hexdigest(), content, files)


def read_oversized(head: bytes, size: int, limits: Limits) -> OrderMail:
    """An order mail too large to read, judged on its headers (`head`: its first bytes)."""
    message = email.parser.BytesHeaderParser().parsebytes(head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0])
    problem = f"the mail is {size:,} bytes, above the limit of {limits.max_mail_bytes:,} (max_mail_bytes)"
    return _mail(message, hashlib.sha256(head).hexdigest(), ["oversized"], (), problem)


def _mail(message: Message, whole: str, content: list[str], files: tuple[OrderFile, ...],
          problem: str | None = None) -> OrderMail:
    message_id = str(message.get("Message-ID") or "").strip()
    if not message_id:
        # Deterministic, so a re-delivered copy of the same bytes still makes one order.
        message_id = f"<sha256-{whole}@mail-order-bot>"
    _name, address = email.utils.parseaddr(str(message.get("From") or ""))
    # The digest tells a redelivery of this very message from another mail reusing its Message-ID:
    # relays keep the sender, the Date header and the attachments, whatever they re-encode.
    digest = hashlib.sha256("\0".join([address.lower(), str(message.get("Date") or ""), *content]).encode(
        "utf-8", "surrogateescape")).hexdigest()
    return OrderMail(message_id, address.lower(), files, digest, problem)


def _order_files(message: Message, limits: Limits) -> Iterable[OrderFile]:
    for part in message.walk():
        filename = part.get_filename()
        if not filename or part.is_multipart():
            continue
        filename = _decode_words(filename)
        if not is_order_attachment(filename):
            continue
        size = _decoded_size(part)
        if size <= limits.max_attachment_bytes:
            content = part.get_payload(decode=True) or b""
            size = len(content)
            if size <= limits.max_attachment_bytes:
                yield OrderFile(filename, content)
                continue
        yield OrderFile(filename, b"", f"{filename} is {size:,} bytes, above the limit of "
                                       f"{limits.max_attachment_bytes:,} (max_attachment_bytes)")


def _decoded_size(part: Message) -> int:
    """The size of the part once decoded, estimated without decoding it (base64: 3 bytes per 4 characters)."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return 0
    if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
        letters = len(payload) - payload.count("\n") - payload.count("\r") - payload.count(" ")
        return letters * 3 // 4
    return len(payload)


def _decode_words(value: str) -> str:
    """A header value with RFC 2047 encoded words (=?utf-8?...?=) decoded; left as it is when they are broken."""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, UnicodeError, email.errors.HeaderParseError):
        return value
