"""Reading an order mail within the limits: its sender, Message-ID, order files and content digest."""

from __future__ import annotations

import binascii
import email.errors
import email.header
import email.parser
import email.utils
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any

from mail_order_bot.attachments import is_order_attachment
from mail_order_bot.limits import Limits

# Enough for the headers of any sane mail; an oversized mail is judged on them alone.
HEADER_BYTES = 256 * 1024
SUBJECT_CHARS = 300


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
    subject: str = ""


def read_mail(chunks: Iterable[bytes], limits: Limits) -> OrderMail:
    """Read a raw RFC 822 message fed in pieces; a mail without a Message-ID gets one derived from its bytes.

    The MIME structure is walked line by line as the pieces arrive: only the headers and the
    decoded order attachments (each within `max_attachment_bytes`) are kept, so memory stays
    bounded by the limits whatever the size of the mail or of its other parts.
    """
    whole = hashlib.sha256()
    walker = _Walker(_lines(chunks, whole), limits)
    message, ended = walker.headers([])
    if ended is _BLANK:
        walker.body(message, [])
    for _line in walker.lines:  # the rest (an epilogue), so the hash covers every byte
        pass
    content = [f"{file.filename}\0{hashlib.sha256(file.content).hexdigest()}\0{file.problem or ''}"
               for file in walker.files]
    return _mail(message, whole.hexdigest(), content, tuple(walker.files))


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
    # Capped: it is shown on the console's Rejections page, not archived.
    subject = " ".join(_decode_words(str(message.get("Subject") or "")).split())[:SUBJECT_CHARS]
    return OrderMail(message_id, address.lower(), files, digest, problem, subject)


# A delimiter line seen while reading a part: (boundary, closing), or None at the end of the mail.
Delimiter = tuple[bytes, bool] | None
_BLANK = object()  # the headers ended with their blank line, not with a delimiter or the end


def _lines(chunks: Iterable[bytes], whole: Any) -> Iterator[bytes]:
    """The lines of the mail, with their line endings, from pieces cut anywhere; `whole` hashes every byte."""
    carry = b""
    for chunk in chunks:
        whole.update(chunk)
        lines = (carry + chunk).splitlines(keepends=True)
        # A last line without its \n may be cut short (even between \r and \n): it waits for the next piece.
        carry = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        yield from lines
    if carry:
        yield carry


class _Walker:
    """Walks the MIME tree of a mail line by line, keeping the order attachments it finds."""

    def __init__(self, lines: Iterator[bytes], limits: Limits) -> None:
        self.lines = lines
        self.limits = limits
        self.files: list[OrderFile] = []

    def headers(self, stack: list[bytes]) -> tuple[Message, object]:
        """The header block up to its blank line; with what ended it (_BLANK, a delimiter or None)."""
        block = []
        ended: object = None
        for line in self.lines:
            if not line.strip(b"\r\n"):
                ended = _BLANK
                break
            if (delimiter := _delimiter(line, stack)) is not None:
                ended = delimiter
                break
            block.append(line)
        return email.parser.BytesHeaderParser().parsebytes(b"".join(block)), ended

    def body(self, part: Message, stack: list[bytes]) -> Delimiter:
        """Read the body of `part` (recursing into multiparts); returns the delimiter that ended it."""
        boundary = part.get_boundary() if part.get_content_maintype() == "multipart" else None
        if boundary:
            inner = [*stack, boundary.encode("ascii", "surrogateescape")]
            delimiter = self._skip(inner)  # the preamble
            while delimiter is not None and delimiter[0] == inner[-1] and not delimiter[1]:
                sub, ended = self.headers(inner)
                delimiter = self.body(sub, inner) if ended is _BLANK else ended  # type: ignore[assignment]
            if delimiter is not None and delimiter[0] == inner[-1]:
                delimiter = self._skip(stack)  # the epilogue
            return delimiter
        if part.get_content_type() == "message/rfc822":
            inner_headers, ended = self.headers(stack)
            return self.body(inner_headers, stack) if ended is _BLANK else ended  # type: ignore[return-value]
        filename = part.get_filename()
        if filename and is_order_attachment(name := _decode_words(filename)):
            return self._attachment(name, part, stack)
        return self._skip(stack)

    def _skip(self, stack: list[bytes]) -> Delimiter:
        for line in self.lines:
            if line.startswith(b"--") and (delimiter := _delimiter(line, stack)) is not None:
                return delimiter
        return None

    def _attachment(self, filename: str, part: Message, stack: list[bytes]) -> Delimiter:
        """Decode the attachment as it streams by; beyond the limit only its size is counted."""
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        decode = _DECODERS.get(encoding, bytes)
        content = bytearray()
        size = 0
        limit = self.limits.max_attachment_bytes
        carry = b""
        delimiter: Delimiter = None
        for line in self.lines:
            if line.startswith(b"--") and (delimiter := _delimiter(line, stack)) is not None:
                break
            if encoding == "base64":
                # Base64 decodes in groups of 4 letters; a line may end mid-group.
                letters = carry + b"".join(line.split())
                cut = len(letters) - len(letters) % 4
                line, carry = letters[:cut], letters[cut:]
            try:
                data = decode(line)
            except (binascii.Error, ValueError):
                data = b""  # as the email package does: a damaged line decodes to nothing
            size += len(data)
            if size <= limit:
                content += data
        if encoding not in _DECODERS and content.endswith(b"\n"):
            # The line ending before a delimiter belongs to the delimiter (RFC 2046).
            del content[-2 if content.endswith(b"\r\n") else -1:]
        if size > limit:
            self.files.append(OrderFile(filename, b"", f"{filename} is {size:,} bytes, above the limit of "
                                                       f"{limit:,} (max_attachment_bytes)"))
        else:
            self.files.append(OrderFile(filename, bytes(content)))
        return delimiter


_DECODERS: dict[str, Callable[[bytes], bytes]] = {"base64": binascii.a2b_base64, "quoted-printable": binascii.a2b_qp}


def _delimiter(line: bytes, stack: list[bytes]) -> Delimiter:
    """The boundary (innermost first) this line delimits, and whether it closes the multipart."""
    if not line.startswith(b"--"):
        return None
    text = line.rstrip(b" \t\r\n")
    for boundary in reversed(stack):
        if text == b"--" + boundary:
            return boundary, False
        if text == b"--" + boundary + b"--":
            return boundary, True
    return None


def _decode_words(value: str) -> str:
    """A header value with RFC 2047 encoded words (=?utf-8?...?=) decoded; left as it is when they are broken."""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, UnicodeError, email.errors.HeaderParseError):
        return value
