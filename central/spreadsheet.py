"""CSV that a spreadsheet opens as data. A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return
is taken as a formula by Excel, LibreOffice and Google Sheets (`=HYPERLINK(...)` in a SKU from a box would be a
live link); OWASP's rule makes such a text cell plain text by putting a `'` before it. Numbers are written as
numbers (a negative count stays a number): only text is changed."""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def row(values: list) -> list:
    return [cell(v) for v in values]
