"""Checks of a rendered PDF on pdfplumber's boxes: every expected value printed (word boxes), no word past the
page's edge, no character on top of another character or of an image."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable

import numpy as np

TOLERANCE = 0.5  # points two boxes may share (glyph boxes of neighbouring lines touch)


def _overlaps(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``(i, j)`` pairs of boxes ``(x0, top, x1, bottom)`` that share more than :data:`TOLERANCE` both ways."""
    width = np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(boxes[:, None, 0], others[None, :, 0])
    height = np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(boxes[:, None, 1], others[None, :, 1])
    return np.argwhere((width > TOLERANCE) & (height > TOLERANCE))


def _boxes(items: list[dict]) -> np.ndarray:
    return np.array([[b["x0"], b["top"], b["x1"], b["bottom"]] for b in items], dtype=float).reshape(-1, 4)


def pdf_problems(pdf: bytes, expected: Iterable[str]) -> list[str]:
    """What is wrong with ``pdf``: missing values (each whitespace-separated token of each expected string,
    counted, against the word boxes), words crossing a page edge, characters overlapping another character or an
    image. Empty when all is well."""
    import pdfplumber

    problems, words = [], []
    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        for number, page in enumerate(doc.pages, 1):
            found = page.extract_words()
            words += found
            problems += [
                f"page {number}: {w['text']!r} crosses the page edge"
                for w in found
                if w["x0"] < 0 or w["top"] < 0 or w["x1"] > page.width or w["bottom"] > page.height
            ]
            chars = [c for c in page.chars if c["text"].strip()]
            boxes = _boxes(chars)
            problems += [
                f"page {number}: {chars[i]['text']!r} at x={chars[i]['x0']:.0f} overlaps {chars[j]['text']!r}"
                for i, j in _overlaps(boxes, boxes)
                if i < j
            ]
            problems += [
                f"page {number}: {chars[i]['text']!r} at x={chars[i]['x0']:.0f} overlaps an image"
                for i, _ in _overlaps(boxes, _boxes(page.images))
            ]
    missing = Counter(t for value in expected for t in str(value).split()) - Counter(w["text"] for w in words)
    problems += [f"{token!r} missing ({n}×)" for token, n in missing.items()]
    return problems
