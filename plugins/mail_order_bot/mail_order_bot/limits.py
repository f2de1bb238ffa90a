"""The bounds on the work one mail may cause: sizes, rows and quantities, with their safe defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Beyond any of these a mail is rejected with the reason; the field names are the setting names."""

    max_mail_bytes: int = 25_000_000
    max_attachment_bytes: int = 10_000_000
    max_xlsx_unpacked_bytes: int = 50_000_000
    max_rows: int = 10_000
    max_quantity: int = 1_000_000
