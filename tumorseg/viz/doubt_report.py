"""The report of an unlabelled batch: ``tumorseg predict DATA --out DIR --report REPORT``.

There are no labels, so nothing is scored: the page lists the cases in the order of the
check-first list (``qc.csv``: most doubtful first, ``tumorseg.inference.uncertainty``), each with
its doubt figures and one picture of the axial slice where the model is least sure, so a user
knows which cases to check and where.  Cases that could not be read come first, with the reason.

A picture is four panels (``DOUBT_PANELS``): FLAIR as it is, FLAIR and T1Gd with the predicted
classes outlined (``tumorseg.viz.labeled.CLASS_COLORS``), and FLAIR dimmed with the voxel
uncertainty (the highest of the WT/TC/ET channels, 0..100) coloured in steps of
``report.UNCERTAINTY_STEP`` and the predicted whole tumour outlined in white
(``report.uncertainty_panel``, also the sixth panel of the scored report).

The page, its style, its pictures (palette PNGs in ``REPORT/img/``) and their encoding are those
of the scored report (``tumorseg.viz.report``): offline, no script; every file written
atomically.  :class:`DoubtReport` draws each case while it is in memory (``add``) and keeps only
the file names; ``write`` writes the page.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tumorseg.atomic import write_bytes, write_text
from tumorseg.labels import CLASS_NAMES
from tumorseg.viz.labeled import CLASS_COLORS
from tumorseg.viz.overview import tumor_slice
from tumorseg.viz.plots import take_slice
from tumorseg.viz.report import (
    DOUBT_FIGURES,
    IMAGE_DIR,
    Picture,
    _grey_indices,
    _label_panel,
    _number,
    _pictures_html,
    _swatch,
    join_panels,
    options_html,
    page_html,
    panel_windows,
    png_bytes,
    uncertainty_legend,
    uncertainty_panel,
    uncertainty_slice,
)

#: The panels of a picture, left to right: (modality, what is drawn over it).
DOUBT_PANELS: tuple[tuple[str, str], ...] = (
    ("FLAIR", "as it is"),
    ("FLAIR", "prediction"),
    ("T1Gd", "prediction"),
    ("FLAIR", "uncertainty"),
)


def doubt_slice(uncertainty: np.ndarray, labels: np.ndarray) -> int:
    """Axial (Z) index of the slice with the most voxel uncertainty: the largest sum over the
    slice of the highest channel of ``uncertainty`` (X, Y, Z, K), 0..100; with none anywhere,
    the slice with the most predicted tumour of ``labels`` (X, Y, Z) (``tumor_slice``)."""
    sums = np.asarray(uncertainty).max(axis=-1).sum(axis=(0, 1), dtype=np.int64)
    return int(np.argmax(sums)) if sums.any() else tumor_slice(labels)


def doubt_picture(
    image: np.ndarray | None, labels: np.ndarray, uncertainty: np.ndarray, z: int
) -> np.ndarray:
    """The four ``DOUBT_PANELS`` of axial slice ``z`` side by side, (H, W) uint8 palette indices
    (``report.palette``).  image: (X, Y, Z, 4) channels last (FLAIR, T1, T1Gd, T2), or None
    (black panels); labels: (X, Y, Z) predicted map, codes 0..3; uncertainty: (X, Y, Z, K)
    uint8 0..100.  Cropped and subsampled as the scored report's pictures
    (``report.panel_windows``)."""
    p2d = take_slice(np.asarray(labels), 2, z).astype(np.uint8)
    u2d = uncertainty_slice(uncertainty, z)
    windows, crop = panel_windows(image, z, [p2d, (u2d > 0).astype(np.uint8)])
    p2d, u2d = p2d[crop], u2d[crop]
    flair = windows["FLAIR"]
    return join_panels(
        [
            _grey_indices(flair),
            _label_panel(flair, p2d),
            _label_panel(windows["T1Gd"], p2d),
            uncertainty_panel(flair, u2d, p2d),
        ]
    )


class DoubtReport:
    """The report of an unlabelled batch, written into ``out_dir`` (``index.html``, ``img/``).

    options: the run's options, shown on the page (name -> value); title: the page's title.
    ``add`` draws one case's picture; ``write`` writes the page for the check-first list.
    """

    def __init__(
        self, out_dir: str | Path, options: Mapping[str, object], title: str = "tumorseg predict"
    ) -> None:
        self.out_dir = Path(out_dir)
        self.options = dict(options)
        self.title = title
        self.pictures: dict[str, list[Picture]] = {}

    def add(
        self, case: str, image: np.ndarray | None, labels: np.ndarray, uncertainty: np.ndarray
    ) -> None:
        """Draw ``case``'s picture into ``out_dir/img``: the slice of ``doubt_slice``.  image
        (X, Y, Z, 4) or None, labels (X, Y, Z), uncertainty (X, Y, Z, K) 0..100, on one grid."""
        z = doubt_slice(uncertainty, labels)
        indices = doubt_picture(image, labels, uncertainty, z)
        uncertain = int((np.asarray(uncertainty)[:, :, z].max(axis=-1) >= 50).sum())
        caption = f"axial slice z={z}: the most uncertainty ({uncertain} voxels at 50 or more)"
        name = f"{_picture_prefix(case)}{z}.png"
        write_bytes(self.out_dir / IMAGE_DIR / name, png_bytes(indices))
        self.pictures[case] = [Picture(name, indices.shape[1], indices.shape[0], caption)]

    def _earlier(self, case: str) -> list[Picture]:
        """The picture an earlier run drew of ``case`` into this report's ``img/`` (a resumed
        run skips the cases whose map exists), or none."""
        from PIL import Image

        for path in sorted((self.out_dir / IMAGE_DIR).glob(f"{_picture_prefix(case)}*.png")):
            z = path.stem.rsplit("-z", 1)[-1]
            with Image.open(path) as picture:
                width, height = picture.size
            return [Picture(path.name, width, height, f"axial slice z={z} (an earlier run's)")]
        return []

    def write(self, qc: pd.DataFrame, failures: Mapping[str, str] | None = None) -> Path:
        """Write ``out_dir/index.html``: the cases that failed (``failures``: case -> reason),
        then the rows of ``qc`` (a check-first list, ``qc_table``) in its order with their
        pictures; remove the pictures of ``img/`` this report drew before and no longer shows
        (a case whose map an earlier run wrote keeps the picture that run drew here).  Returns
        the page's path."""
        failures = dict(failures or {})
        for case in qc["case"].astype(str):
            if case not in self.pictures:
                self.pictures[case] = self._earlier(case)
        rows = [_case_html(i + 1, row, self.pictures[str(row["case"])])
                for i, row in enumerate(qc.to_dict("records"))]  # fmt: skip
        failed = "".join(
            f'<li><b>{html.escape(c)}</b>: <span class="failed">{html.escape(r)}</span></li>'
            for c, r in sorted(failures.items())
        )
        body = (
            f"<h2>Summary</h2>\n<p>{len(qc)} case(s) segmented, {len(failures)} could not be "
            "read. No labels: the cases are ranked by the model's own doubt, most doubtful "
            "first (the order of qc.csv).</p>\n"
            + (f"<h2>Cases that could not be read</h2><ul>{failed}</ul>\n" if failed else "")
            + options_html(self.options)
            + f"\n<h2>Cases, most doubtful first</h2>\n{_legend_html()}\n"
            '<table class="cases"><tbody>\n' + "\n".join(rows) + "\n</tbody></table>\n"
        )
        path = write_text(self.out_dir / "index.html", page_html(self.title, body))
        shown = {p.file for pictures in self.pictures.values() for p in pictures}
        for old in (self.out_dir / IMAGE_DIR).glob("doubt-*.png"):
            if old.name not in shown:
                old.unlink()
        return path


def _picture_prefix(case: str) -> str:
    """File names of a case's pictures start so (then the slice index and ``.png``)."""
    return "doubt-" + re.sub(r"[^A-Za-z0-9._-]+", "_", case) + "-z"


def _legend_html() -> str:
    """What the panels, the figures and the colours mean."""
    panels = ", ".join(f"{m} · {what}" for m, what in DOUBT_PANELS)
    classes = "".join(_swatch(c, n) for c, n in zip(CLASS_COLORS.values(), CLASS_NAMES))
    return (
        f"<p>Each picture shows the axial slice where the model is least sure, left to right: "
        f"{panels}.<br>Predicted classes (outlines):{classes}<br>{uncertainty_legend()}"
        f"{_swatch((255, 255, 255), 'predicted whole tumour (outline)')}<br>"
        "Expected Dice: the Dice the map would score if the model's probabilities were right. "
        "Pass disagreement: the mean, over the region's voxels, of the difference between the "
        "mirror passes' and ensemble members' probabilities (0 agree .. 1).</p>"
    )


def _case_html(rank: int, row: Mapping[str, object], pictures: list[Picture]) -> str:
    """One case's table row: rank and id, its doubt figures, its picture (or why none)."""
    case = str(row.get("case", ""))
    cells = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_number(row.get(key, math.nan), digits)}</td></tr>"
        for key, name, digits in DOUBT_FIGURES
    )
    note = ""
    if not pictures:
        note = (
            '<p class="note">no picture: its map was written by an earlier run that drew no '
            "picture here (rerun with --overwrite to draw it)</p>"
        )
    return (
        f'<tr class="case" data-case="{html.escape(case)}">'
        f"<td>{rank}. <b>{html.escape(case)}</b>{note}</td>"
        f'<td><table class="figures">{cells}</table></td><td>{_pictures_html(pictures)}</td></tr>'
    )
