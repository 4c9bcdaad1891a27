"""A QR symbol drawn in an fpdf2 PDF as vector squares: card sheets, statements and
retirement certificates all print theirs with it."""

from __future__ import annotations

from collections.abc import Sequence

from fpdf import FPDF


def draw_qr(pdf: FPDF, x: float, y: float, size: float, matrix: Sequence[Sequence[int]]) -> None:
    """A QR symbol as vector squares, its top-left module at (x, y), `size` mm wide."""
    m = size / len(matrix)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(matrix):
        c = 0
        while c < len(row):  # one rectangle per run of dark modules
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                # A hair taller than a module, so rows meet without a hairline gap.
                pdf.rect(x + start * m, y + r * m, (c - start) * m, m * 1.02, style="F")
            else:
                c += 1
