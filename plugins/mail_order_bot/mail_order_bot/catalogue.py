"""The product catalogue: SKU, name and unit price, read from a CSV file."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path


class CatalogueError(ValueError):
    """The catalogue file is missing or malformed."""


@dataclass(frozen=True)
class Product:
    """One catalogue entry."""

    sku: str
    name: str
    unit_price: Decimal


class Catalogue:
    """Products by SKU."""

    def __init__(self, products: dict[str, Product]) -> None:
        self.products = products

    def get(self, sku: str) -> Product | None:
        """The product with this SKU, or None when it is not sold."""
        return self.products.get(sku)

    def __len__(self) -> int:
        return len(self.products)


def sample_catalogue_text() -> str:
    """The catalogue shipped with the package."""
    return resources.files("mail_order_bot").joinpath("data/catalogue.csv").read_text(encoding="utf-8")


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read a `sku,name,unit_price` CSV; an empty path means the shipped sample catalogue."""
    if not path:
        return parse_catalogue(sample_catalogue_text(), "sample catalogue")
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CatalogueError(f"catalogue {path}: {exc.strerror or exc}") from None
    return parse_catalogue(text, str(path))


def parse_catalogue(text: str, origin: str) -> Catalogue:
    """Parse catalogue CSV text; `origin` names it in errors."""
    reader = csv.DictReader(io.StringIO(text))
    header = {name.strip().lower() for name in reader.fieldnames or []}
    missing = {"sku", "name", "unit_price"} - header
    if missing:
        raise CatalogueError(f"{origin}: missing column(s) {', '.join(sorted(missing))}")
    products = {}
    for row in reader:
        row = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
        if not row["sku"]:
            continue
        try:
            price = Decimal(row["unit_price"])
        except InvalidOperation:
            raise CatalogueError(f"{origin} line {reader.line_num}: bad unit_price {row['unit_price']!r}") from None
        if not price.is_finite() or price < 0:
            raise CatalogueError(f"{origin} line {reader.line_num}: bad unit_price {row['unit_price']!r}")
        products[row["sku"]] = Product(row["sku"], row["name"], price)
    return Catalogue(products)
