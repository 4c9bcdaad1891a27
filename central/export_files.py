"""`central.exports`' tables written as CSV or XLSX, safe to open in a spreadsheet.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula,
and a household, item or reason is typed by village staff: ``=cmd|' /C calc'!A0`` as a
household name must stay text (CSV injection). In CSV such text is written with a
leading ``'`` (what spreadsheets themselves do to keep text); in XLSX it is written as
a string cell, so its value stays exactly what was typed. Numbers are never changed:
a reversal's ``-500`` points is a number, not text.

CSV starts with a UTF-8 byte order mark, so Excel reads the Chinese right; date-times
are ``YYYY-MM-DD HH:MM:SS``. XLSX has real date-time cells, a frozen header row, and an
"about" sheet naming the village, the range and the time zone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from central.exports import TIME_FORMAT, Cell, Table
from greenpass.errors import CentralError

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_ROWS_PER_CHUNK = 500
XLSX_MAX_ROWS = 1_048_575  # Excel's 1,048,576 rows, less the header
XLSX_DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"


def _csv_cell(value: Cell) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime(TIME_FORMAT)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_chunks(table: Table) -> Iterator[str]:
    """The table as CSV text in chunks (one thread hop per chunk, not per row)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    buf.write("\ufeff")
    writer.writerow([_csv_cell(h) for h in table.headers])
    for n, row in enumerate(table.rows, start=1):
        writer.writerow([_csv_cell(v) for v in row])
        if n % CSV_ROWS_PER_CHUNK == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _xlsx_cell(ws: WriteOnlyWorksheet, value: Cell) -> Any:  # a cell, or the value itself
    if isinstance(value, datetime):
        cell = WriteOnlyCell(ws, value=value)
        cell.number_format = XLSX_DATE_FORMAT
        return cell
    if isinstance(value, str):
        # openpyxl stores a string starting with "=" as a formula; and refuses control
        # characters, which only a forged or damaged entry could carry.
        cell = WriteOnlyCell(ws, value=ILLEGAL_CHARACTERS_RE.sub("", value))
        cell.data_type = "s"
        return cell
    return value


def xlsx_bytes(tables: list[Table], about: list[tuple[str, str]]) -> bytes:
    """A workbook with a sheet per table, then an "about" sheet of (name, value) rows.
    Built in memory; CentralError past Excel's row limit (choose a shorter range)."""
    wb = Workbook(write_only=True)
    for table in tables:
        ws = wb.create_sheet(table.title)
        ws.freeze_panes = "A2"
        for i, header in enumerate(table.headers):
            ws.column_dimensions[get_column_letter(i + 1)].width = max(
                10, min(40, 2 * len(header) + 2)
            )
        ws.append([_xlsx_cell(ws, h) for h in table.headers])
        for n, row in enumerate(table.rows, start=1):
            if n > XLSX_MAX_ROWS:
                raise CentralError(
                    f"more than {XLSX_MAX_ROWS:,} rows do not fit a spreadsheet: "
                    "choose a shorter date range, or CSV"
                )
            ws.append([_xlsx_cell(ws, v) for v in row])
    ws = wb.create_sheet("about")
    for name, value in about:
        ws.append([_xlsx_cell(ws, name), _xlsx_cell(ws, value)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
