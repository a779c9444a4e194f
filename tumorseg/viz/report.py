"""The visual report of a scored batch: ``tumorseg evaluate --report DIR`` and ``tumorseg score
--report DIR``.

``DIR/index.html`` opens offline (no script, no web font, no remote address): a summary (means
and medians over cases, the number of failed cases, the options of the run), then one row per
case, sorted from worst to best WT Dice (failed cases first; a NaN WT Dice, no tumour in label
or prediction under ``both_empty="nan"``, last), with the case's figures and its pictures,
palette PNGs in ``DIR/img/``.

A picture is one axial slice in five panels: FLAIR and T1Gd with the label, then with the
prediction, outlined in the course's class colours (``tumorseg.viz.labeled.CLASS_COLORS``), and
FLAIR with the disagreement filled in (``ERROR_COLORS``: tumour missed, false positive, wrong
class) and the label's whole tumour outlined in white.  Where the scorer has the model's
probabilities (``evaluate``), a sixth panel beside the errors shows the voxel uncertainty of the
same slice (``uncertainty_panel``, as the report without labels draws it), and the case's
figures include its doubt (``DOUBT_FIGURES``).  Every case gets the slice where label
and prediction disagree most; a case with a far false positive (a predicted whole-tumour
component that does not touch the label's and lies more than ``FAR_MM`` from it) gets a second
picture through the largest one.

:class:`CaseReport` draws each case's pictures while the case is in memory (its ``add`` is the
``on_case`` hook of ``evaluate`` and ``score_folder``) and keeps only their file names, so no
more than one case's volumes are held; ``write`` then writes the page.  Every file is written
atomically.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from tumorseg.atomic import write_bytes, write_text
from tumorseg.data import Dataset
from tumorseg.errors import DataError
from tumorseg.inference.score import ERROR, ScoredCase, count_line, failed_cases, summary
from tumorseg.labels import CLASS_KEYS, CLASS_NAMES, REGIONS
from tumorseg.viz.labeled import CLASS_COLORS
from tumorseg.viz.overview import brain_box, tumor_slice, window_slice
from tumorseg.viz.plots import take_slice

#: A false-positive component farther than this from the labelled tumour (mm) gets its own picture.
FAR_MM = 10.0
#: Longest side of a panel in pixels; a larger brain crop is subsampled by a whole step (a
#: 1 mm BraTS brain, at most 240 voxels across, never is).
MAX_PANEL_PX = 256
#: Grey levels of the palette PNGs (the palette is these greys, then the colours below).
GREY_LEVELS = 64
#: Colours of the disagreement panel: label tumour predicted as background, predicted tumour on
#: label background, tumour of both with another class.
ERROR_COLORS: dict[str, tuple[int, int, int]] = {
    "missed": (255, 220, 0),
    "false positive": (255, 0, 255),
    "wrong class": (0, 230, 230),
}


class Overlay(str, Enum):
    """What a panel draws over its modality: the label's or the prediction's class outlines, or
    the disagreement between them."""

    LABEL = "label"
    PREDICTION = "prediction"
    ERRORS = "errors"
    UNCERTAINTY = "uncertainty"


#: The panels of a picture, left to right: (modality, what is drawn over it).
PANELS: tuple[tuple[str, Overlay], ...] = (
    ("FLAIR", Overlay.LABEL),
    ("T1Gd", Overlay.LABEL),
    ("FLAIR", Overlay.PREDICTION),
    ("T1Gd", Overlay.PREDICTION),
    ("FLAIR", Overlay.ERRORS),
)
#: The panel added beside the errors when the case's voxel uncertainty is known.
UNCERTAINTY_PANEL: tuple[str, Overlay] = ("FLAIR", Overlay.UNCERTAINTY)
#: A case's doubt figures (``tumorseg.inference.uncertainty.QC_COLUMNS``): column, what the
#: pages call it, decimals.
DOUBT_FIGURES: tuple[tuple[str, str, int], ...] = (
    ("doubt", "doubt (1 - lowest expected Dice)", 3),
    *((f"expected_dice_{r}", f"expected Dice {r}", 3) for r in REGIONS),
    *((f"disagree_{r}", f"pass disagreement {r}", 3) for r in REGIONS),
    ("uncertain_ratio", "uncertain voxels / tumour voxels", 3),
    ("tumour_ml", "predicted tumour (ml)", 1),
)
#: Channels of those modalities in an (X, Y, Z, 4) image (``tumorseg.labels.MODALITIES``).
CHANNEL = {"FLAIR": 0, "T1Gd": 2}
#: Black pixels between panels.
GAP_PX = 2
#: Folder of the pictures, inside the report folder.
IMAGE_DIR = "img"
#: Colours of a voxel uncertainty map (0..100, ``tumorseg.inference.uncertainty``) in the
#: report of an unlabelled batch (``tumorseg.viz.doubt_report``): one per step of
#: ``UNCERTAINTY_STEP`` from ``UNCERTAINTY_STEP`` up (purple to red to yellow); less is not
#: coloured.
UNCERTAINTY_STEP = 10
UNCERTAINTY_COLORS: tuple[tuple[int, int, int], ...] = (
    (90, 0, 140), (130, 0, 150), (170, 0, 140), (205, 20, 110), (235, 50, 70),
    (250, 90, 30), (255, 140, 0), (255, 195, 0), (255, 245, 60),
)  # fmt: skip
#: Palette indices: the greys, then one per class label, one per error kind, one per
#: uncertainty step.
_CLASS_INDEX = {k: GREY_LEVELS + i for i, k in enumerate(CLASS_COLORS)}
_ERROR_INDEX = {name: GREY_LEVELS + len(CLASS_COLORS) + i for i, name in enumerate(ERROR_COLORS)}
UNCERTAINTY_INDEX0 = GREY_LEVELS + len(CLASS_COLORS) + len(ERROR_COLORS)
_WHITE = GREY_LEVELS - 1


@dataclass(frozen=True)
class FarComponent:
    """The largest far false-positive component: its voxels, its distance in mm to the nearest
    labelled tumour voxel, the axial (Z) slice that holds most of it, and its X and Y ranges."""

    voxels: int
    distance_mm: float
    z: int
    box: tuple[slice, slice]


@dataclass(frozen=True)
class Picture:
    """One picture of a case: file name inside ``IMAGE_DIR``, its size, and its caption."""

    file: str
    width: int
    height: int
    caption: str


def disagreement_slice(truth: np.ndarray, pred: np.ndarray) -> int:
    """Axial (Z) index of the slice of (X, Y, Z) label maps where most voxels differ (any class);
    where none differ, the slice with the most labelled tumour (``tumor_slice``)."""
    counts = (np.asarray(truth) != np.asarray(pred)).sum(axis=(0, 1))
    return int(np.argmax(counts)) if counts.any() else tumor_slice(truth)


def far_false_positive(
    truth: np.ndarray,
    pred: np.ndarray,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    far_mm: float = FAR_MM,
) -> FarComponent | None:
    """The largest predicted whole-tumour component (26-connected, as the post-processing
    counts them) that does not touch the label's whole tumour and lies more than ``far_mm`` from
    it; None when there is none, or when either map has no tumour.

    truth, pred: (X, Y, Z) label maps, codes 0..3; spacing: mm per voxel along X, Y, Z.
    """
    t, p = np.asarray(truth) > 0, np.asarray(pred) > 0
    if not t.any() or not p.any():
        return None
    from scipy.spatial import cKDTree

    from tumorseg.inference.predict import brain_bbox

    crop = brain_bbox((t | p)[..., None])  # every component and distance lies inside
    origin = [s.start for s in crop]
    t, p = t[crop], p[crop]
    components, n = ndimage.label(p, structure=np.ones((3, 3, 3), bool))
    touching = set(np.unique(components[t]).tolist())
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    boxes = ndimage.find_objects(components)
    scale = np.asarray(spacing, dtype=np.float64)
    surface = t & ~ndimage.binary_erosion(t)
    tree = cKDTree(np.argwhere(surface) * scale)
    for k in sorted(set(range(1, n + 1)) - touching, key=lambda k: (-sizes[k], k)):
        box = boxes[k - 1]
        voxels = np.argwhere(components[box] == k) + [s.start for s in box]
        distance = float(tree.query(voxels * scale)[0].min())
        if distance > far_mm:
            z = int(np.argmax(np.bincount(voxels[:, 2]))) + origin[2]
            x, y = (slice(int(s.start) + o, int(s.stop) + o) for s, o in zip(box[:2], origin))
            return FarComponent(int(sizes[k]), distance, z, (x, y))
    return None


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of a 2-D boolean mask with a 4-neighbour outside it (the border counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _grey_indices(window: np.ndarray, dim: float = 1.0) -> np.ndarray:
    """Palette grey index of each pixel of a slice windowed to 0..1, ``dim`` times as bright."""
    return np.rint(np.clip(window * dim, 0, 1) * (GREY_LEVELS - 1)).astype(np.uint8)


def _label_panel(window: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(H, W) palette indices: a windowed slice in grey with each class outlined in its colour."""
    out = _grey_indices(window)
    for code, index in _CLASS_INDEX.items():
        out[_outline(labels == code)] = index
    return out


def _error_panel(window: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(H, W) palette indices: the slice dimmed, the disagreement filled in ``ERROR_COLORS`` and
    the label's whole tumour outlined in white."""
    out = _grey_indices(window, dim=0.6)
    out[(truth > 0) & (pred == 0)] = _ERROR_INDEX["missed"]
    out[(truth == 0) & (pred > 0)] = _ERROR_INDEX["false positive"]
    out[(truth > 0) & (pred > 0) & (truth != pred)] = _ERROR_INDEX["wrong class"]
    out[_outline(truth > 0)] = _WHITE
    return out


def uncertainty_panel(window: np.ndarray, uncertainty: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(H, W) palette indices: the slice dimmed, each pixel of ``uncertainty`` (H, W, 0..100) at
    or above ``UNCERTAINTY_STEP`` in its step's colour, the predicted whole tumour of ``pred``
    (H, W, codes 0..3) outlined in white."""
    out = _grey_indices(window, dim=0.6)
    step = np.asarray(uncertainty, np.int32) // UNCERTAINTY_STEP
    shown = step >= 1
    level = np.minimum(step - 1, len(UNCERTAINTY_COLORS) - 1)
    out[shown] = (UNCERTAINTY_INDEX0 + level[shown]).astype(np.uint8)
    out[_outline(pred > 0)] = _WHITE
    return out


def uncertainty_slice(uncertainty: np.ndarray, z: int) -> np.ndarray:
    """(H, W) axial slice ``z`` of a voxel uncertainty map (X, Y, Z, K), the highest of its K
    channels, oriented as ``take_slice`` shows it."""
    return take_slice(np.asarray(uncertainty), 2, z).max(axis=-1)


def _frame(shape: tuple[int, int], box: tuple[slice, slice], margin: int = 3) -> np.ndarray:
    """(X, Y) boolean outline of the rectangle ``box`` (X and Y ranges) grown by ``margin``."""
    frame = np.zeros(shape, bool)
    x0, y0 = max(box[0].start - margin, 0), max(box[1].start - margin, 0)
    x1, y1 = min(box[0].stop + margin, shape[0]), min(box[1].stop + margin, shape[1])
    frame[x0:x1, y0:y1] = True
    frame[x0 + 1 : x1 - 1, y0 + 1 : y1 - 1] = False
    return frame


def slice_picture(
    image: np.ndarray | None,
    truth: np.ndarray,
    pred: np.ndarray,
    z: int,
    mark: tuple[slice, slice] | None = None,
    uncertainty: np.ndarray | None = None,
) -> np.ndarray:
    """The five ``PANELS`` of axial slice ``z`` side by side (and ``UNCERTAINTY_PANEL`` sixth
    when ``uncertainty`` is given), as (H, W) uint8 palette indices (see ``palette``), oriented
    as ``take_slice`` shows them.

    image: (X, Y, Z, 4) channels last (FLAIR, T1, T1Gd, T2), or None (the panels' background is
        black and the whole slice is shown); truth, pred: (X, Y, Z) label maps, codes 0..3;
        mark: X and Y ranges framed in white on the errors panel (a far false positive);
        uncertainty: (X, Y, Z, K) voxel uncertainty, uint8 0..100, or None.
    The panels are cropped to the brain (non-zero FLAIR or T1Gd), the tumour of either map and
    the uncertainty shown, and subsampled by a whole step when longer than ``MAX_PANEL_PX``.
    """
    t2d = take_slice(np.asarray(truth), 2, z).astype(np.uint8)
    p2d = take_slice(np.asarray(pred), 2, z).astype(np.uint8)
    maps = [t2d, p2d]
    if uncertainty is not None:
        u2d = uncertainty_slice(uncertainty, z)
        maps.append((u2d >= UNCERTAINTY_STEP).astype(np.uint8))
    windows, crop = panel_windows(image, z, maps)
    t2d, p2d = t2d[crop], p2d[crop]
    panels = []
    for name, overlay in PANELS:
        if overlay is Overlay.ERRORS:
            panels.append(_error_panel(windows[name], t2d, p2d))
        else:
            panels.append(_label_panel(windows[name], t2d if overlay is Overlay.LABEL else p2d))
    if mark is not None:
        panels[-1][np.rot90(_frame(np.shape(truth)[:2], mark))[crop]] = _WHITE
    if uncertainty is not None:
        panels.append(uncertainty_panel(windows[UNCERTAINTY_PANEL[0]], u2d[crop], p2d))
    return join_panels(panels)


def panel_windows(
    image: np.ndarray | None, z: int, maps: list[np.ndarray]
) -> tuple[dict[str, np.ndarray], tuple[slice, slice]]:
    """The windowed ``CHANNEL`` slices of axial slice ``z`` of ``image`` (X, Y, Z, 4), or black
    ones when it is None, cropped to the brain and the 2-D ``maps`` (slices as ``take_slice``
    shows them; the whole slice without an image) and subsampled by a whole step when longer
    than ``MAX_PANEL_PX``; returns them and the crop, to cut the maps' slices the same way."""
    shape = maps[0].shape
    if image is None:
        modality = {name: np.zeros(shape, np.float32) for name in CHANNEL}
        rows, cols = slice(None), slice(None)
    else:
        modality = {name: take_slice(image[..., c], 2, z) for name, c in CHANNEL.items()}
        rows, cols = brain_box(np.stack([*modality.values(), *maps]))
    step = max(1, math.ceil(max(maps[0][rows, cols].shape) / MAX_PANEL_PX))
    crop = (slice(rows.start, rows.stop, step), slice(cols.start, cols.stop, step))
    return {name: window_slice(m[crop]) for name, m in modality.items()}, crop


def join_panels(panels: list[np.ndarray]) -> np.ndarray:
    """(H, W) palette-index panels side by side with ``GAP_PX`` black pixels between them."""
    gap = np.zeros((panels[0].shape[0], GAP_PX), np.uint8)
    return np.concatenate([x for panel in panels for x in (panel, gap)][:-1], axis=1)


def palette() -> list[int]:
    """The flat RGB palette of the pictures: ``GREY_LEVELS`` greys, the class colours, the error
    colours, the uncertainty colours."""
    greys = np.linspace(0, 255, GREY_LEVELS).round().astype(int)
    colours = [(g, g, g) for g in greys] + [*CLASS_COLORS.values(), *ERROR_COLORS.values()]
    colours += list(UNCERTAINTY_COLORS)
    return [int(v) for rgb in colours for v in rgb]


def png_bytes(indices: np.ndarray) -> bytes:
    """Encode (H, W) uint8 palette indices as a palette PNG (``palette``)."""
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(indices, dtype=np.uint8), mode="P")
    picture.putpalette(palette())
    buffer = io.BytesIO()
    picture.save(buffer, "png", optimize=True)
    return buffer.getvalue()


def failed(row: Mapping[str, object]) -> bool:
    """Whether a table row is a case that could not be scored: a non-empty ``error`` field, as
    ``score.failed_cases`` finds them (a table without that column has no failed case)."""
    error = row.get(ERROR)
    return isinstance(error, str) and bool(error.strip())


def order_worst_first(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a scored table, failed cases first, then by WT Dice from worst to best; a case
    whose WT Dice is NaN (no tumour in label or prediction, scored NaN) comes last.  Ties keep
    the table's order."""
    fails = table["case"].astype(str).isin(failed_cases(table))
    wt = table["WT_dice"] if "WT_dice" in table.columns else pd.Series(np.nan, table.index)
    key = pd.DataFrame({"failed": ~fails, "nan": wt.isna(), "wt": wt.fillna(0.0)})
    return table.loc[key.sort_values(["failed", "nan", "wt"], kind="stable").index]


class CaseReport:
    """The report of one scored batch, written into ``out_dir`` (``index.html`` and ``img/``).

    options: the run's options, shown in the summary (name -> value).
    image_source: case id -> (X, Y, Z, 4) image, for scorers that do not read the image
        (``score_folder``); None, or a None answer, draws the panels on black.
    title: the page's title.

    ``add`` (an ``on_case`` hook) draws one case's pictures and keeps their file names;
    ``write`` writes the page for the finished table.
    """

    def __init__(
        self,
        out_dir: str | Path,
        options: Mapping[str, object],
        image_source: Callable[[str], np.ndarray | None] | None = None,
        title: str = "tumorseg report",
    ) -> None:
        self.out_dir = Path(out_dir)
        self.options = dict(options)
        self.image_source = image_source
        self.title = title
        self.pictures: dict[str, list[Picture]] = {}
        self.uncertainty = False  # whether a picture has the uncertainty panel

    def _save(self, case: str, indices: np.ndarray, caption: str, z: int) -> Picture:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", case)
        name = f"{len(self.pictures):04d}-{safe}-z{z}.png"
        write_bytes(self.out_dir / IMAGE_DIR / name, png_bytes(indices))
        return Picture(name, indices.shape[1], indices.shape[0], caption)

    def add(self, scored: ScoredCase) -> None:
        """Draw ``scored``'s pictures into ``out_dir/img`` (the slice of most disagreement, and
        the largest far false positive when there is one on another slice), with the
        uncertainty panel when ``scored.uncertainty`` is known."""
        image, note = scored.image, ""
        if image is None and self.image_source is not None:
            try:
                image = self.image_source(scored.case)
            except DataError as exc:  # the scores stand; the picture goes without the scan
                note = f" (image not shown: {exc})"
        truth, pred = np.asarray(scored.truth), np.asarray(scored.pred)
        z = disagreement_slice(truth, pred)
        changed = int((truth[..., z] != pred[..., z]).sum())
        what = f"the most disagreement ({changed} voxels differ)"
        if not changed:
            what = "no voxel differs; the slice with the most labelled tumour"
        far = far_false_positive(truth, pred, scored.spacing)
        far_what, mark = "", None
        if far is not None:
            far_what = (
                f"far false positive: {far.voxels} voxels, {far.distance_mm:.0f} mm from the "
                f"labelled tumour (framed)"
            )
            if far.z == z:  # on the same slice: framed in the one picture
                what, mark = f"{what}; {far_what}", far.box
        uncertainty = scored.uncertainty
        self.uncertainty |= uncertainty is not None
        indices = slice_picture(image, truth, pred, z, mark, uncertainty)
        pictures = [self._save(scored.case, indices, f"axial slice z={z}: {what}{note}", z)]
        if far is not None and far.z != z:
            indices = slice_picture(image, truth, pred, far.z, far.box, uncertainty)
            caption = f"axial slice z={far.z}: {far_what}{note}"
            pictures.append(self._save(scored.case, indices, caption, far.z))
        self.pictures[scored.case] = pictures

    def write(self, table: pd.DataFrame) -> Path:
        """Write ``out_dir/index.html`` for ``table`` (one row per case, as ``evaluate`` or
        ``score_folder`` return it) and remove pictures of ``img/`` that it does not show.
        Returns the page's path."""
        page = report_html(table, self.pictures, self.options, self.title, self.uncertainty)
        path = write_text(self.out_dir / "index.html", page)
        shown = {p.file for pictures in self.pictures.values() for p in pictures}
        for old in (self.out_dir / IMAGE_DIR).glob("*.png"):
            if old.name not in shown:
                old.unlink()
        return path


#: The page's style sheet (the page has no script and loads nothing but its pictures).
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 2px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
table.summary th, table.summary td, table.figures th, table.figures td {
  border-bottom: 1px solid #ddd; }
table.cases > tbody > tr > td { vertical-align: top; text-align: left; padding: 10px 8px;
  border-top: 2px solid #999; }
.failed { color: #b00; font-weight: bold; }
.swatch { display: inline-block; width: 1em; height: 1em; vertical-align: -0.15em;
  margin: 0 0.3em 0 1em; border: 1px solid #777; }
figure { margin: 0 0 8px 0; }
figure img { display: block; max-width: 100%; height: auto; image-rendering: pixelated;
  background: #000; }
figcaption, .note { color: #555; font-size: 12px; }
dl.options { display: grid; grid-template-columns: max-content auto; gap: 0 1em; }
dl.options dt { font-weight: bold; } dl.options dd { margin: 0; }
"""
#: On-screen size of a picture relative to its pixels.
DISPLAY_SCALE = 1.5


def _number(value: object, digits: int, unit: str = "") -> str:
    """A figure for the page: rounded to ``digits``, with ``unit``; NaN or missing as a dash."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return html.escape(str(value))
    return "–" if math.isnan(v) else f"{v:.{digits}f}{unit}"


def _summary_html(table: pd.DataFrame, options: Mapping[str, object]) -> str:
    """The summary section: case counts, means and medians per region, the run's options."""
    parts = [f"<p>{html.escape(count_line(table))}.</p>"]
    if all(f"{r}_dice" in table.columns and f"{r}_hd95" in table.columns for r in REGIONS):
        stats = summary(table)
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "region", "Dice mean", "Dice SD", "Dice median", "HD95 mean", "HD95 median", "n"
            )
        )  # fmt: skip
        rows = "".join(
            f"<tr><td>{region}</td><td>{_number(s.dice_mean, 3)}</td>"
            f"<td>{_number(s.dice_std, 3)}</td><td>{_number(s.dice_median, 3)}</td>"
            f"<td>{_number(s.hd95_mean, 1, ' mm')}</td><td>{_number(s.hd95_median, 1, ' mm')}</td>"
            f"<td>{s.get('n', '')}</td></tr>"
            for region, s in stats.iterrows()
        )
        parts.append(f'<table class="summary"><tr>{head}</tr>{rows}</table>')
        parts.append(
            '<p class="note">n: the cases each mean and median is taken over; a failed case, '
            "and a region absent from both maps when it is scored NaN, are left out.</p>"
        )
    parts.append(options_html(options))
    return "\n".join(parts)


def options_html(options: Mapping[str, object]) -> str:
    """The run's options (name -> value) as a heading and a definition list."""
    items = "".join(
        f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in options.items()
    )
    return f'<h3>Options of the run</h3><dl class="options">{items}</dl>'


def _swatch(rgb: tuple[int, int, int], name: str) -> str:
    return f'<span class="swatch" style="background: rgb{tuple(rgb)}"></span>{html.escape(name)}'


def uncertainty_legend() -> str:
    """The colours of the uncertainty panel (``uncertainty_panel``), for a page's legend."""
    steps = "".join(
        _swatch(c, f"{(i + 1) * UNCERTAINTY_STEP}+") for i, c in enumerate(UNCERTAINTY_COLORS)
    )
    return (
        "Voxel uncertainty (the binary entropy of the WT, TC or ET probability, 0 certain to 100 "
        f"at p = 0.5; the highest of the three):{steps}"
    )


def _legend_html(uncertainty: bool = False) -> str:
    """What the panels and colours of the pictures mean (``uncertainty``: with the uncertainty
    panel)."""
    shown = [*PANELS, UNCERTAINTY_PANEL] if uncertainty else PANELS
    panels = ", ".join(f"{m} · {what.value}" for m, what in shown)
    classes = "".join(_swatch(c, n) for c, n in zip(CLASS_COLORS.values(), CLASS_NAMES))
    errors = "".join(_swatch(c, n) for n, c in ERROR_COLORS.items())
    doubt = ""
    if uncertainty:
        doubt = (
            f"<br>Uncertainty (last panel, predicted whole tumour outlined in white): "
            f"{uncertainty_legend()}<br>Doubt: the model's own estimate, without the label; "
            "expected Dice: the Dice the map would score if the model's probabilities were right."
        )
    return (
        f"<p>Each picture shows one axial slice, left to right: {panels}.<br>"
        f"Outlines:{classes}<br>Errors (fifth panel):{errors}"
        f"{_swatch((255, 255, 255), 'labelled whole tumour (outline)')}{doubt}<br>"
        f"A far false positive is a predicted component more than {FAR_MM:g} mm from the "
        "labelled tumour; a case with one gets a picture of the slice that shows it.</p>"
    )


def _figures_html(row: Mapping[str, object]) -> str:
    """One case's figures: Dice, HD95, sensitivity, specificity per region, then the per-class
    sensitivity and specificity and any other column of the row."""
    head = "<tr><th></th><th>Dice</th><th>HD95</th><th>sens.</th><th>spec.</th></tr>"
    cells = [head]
    for region in REGIONS:
        figures = (
            _number(row.get(f"{region}_dice", math.nan), 3),
            _number(row.get(f"{region}_hd95", math.nan), 1, " mm"),
            _number(row.get(f"{region}_sensitivity", math.nan), 3),
            _number(row.get(f"{region}_specificity", math.nan), 4),
        )
        cells.append(f"<tr><td>{region}</td>" + "".join(f"<td>{f}</td>" for f in figures))
    for key, name in zip(CLASS_KEYS, CLASS_NAMES):
        sens = _number(row.get(f"{key}_sensitivity", math.nan), 3)
        spec = _number(row.get(f"{key}_specificity", math.nan), 4)
        cells.append(f"<tr><td>{name}</td><td></td><td></td><td>{sens}</td><td>{spec}</td></tr>")
    known = {"case", ERROR} | {f"{r}_{m}" for r in REGIONS for m in
                                 ("dice", "hd95", "sensitivity", "specificity")}  # fmt: skip
    known |= {f"{k}_{m}" for k in CLASS_KEYS for m in ("sensitivity", "specificity")}
    cells += [
        f"<tr><td>{html.escape(name)}</td><td colspan=4>{_number(row[key], digits)}</td></tr>"
        for key, name, digits in DOUBT_FIGURES
        if key in row
    ]
    known |= {key for key, _, _ in DOUBT_FIGURES}
    extra = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td colspan=4>{_number(v, 2)}</td></tr>"
        for k, v in row.items()
        if k not in known
    )
    return f'<table class="figures">{"".join(cells)}{extra}</table>'


def _pictures_html(pictures: list[Picture]) -> str:
    """The figures (HTML ``<figure>``) of one case's pictures, each with its caption."""
    return "".join(
        f'<figure><img src="{IMAGE_DIR}/{html.escape(p.file)}" '
        f'width="{round(p.width * DISPLAY_SCALE)}" height="{round(p.height * DISPLAY_SCALE)}" '
        f'alt="{html.escape(p.caption)}"><figcaption>{html.escape(p.caption)}</figcaption></figure>'
        for p in pictures
    )


def _case_html(rank: int, row: Mapping[str, object], pictures: list[Picture]) -> str:
    """One case's table row: rank and id (and the error of a failed case), figures, pictures."""
    case = str(row.get("case", ""))
    status = ""
    if failed(row):
        status = f'<p class="failed">failed: {html.escape(str(row[ERROR]))}</p>'
    elif not pictures:
        status = '<p class="note">no picture</p>'
    figures = "" if failed(row) else _figures_html(row)
    return (
        f'<tr class="case" data-case="{html.escape(case)}">'
        f"<td>{rank}. <b>{html.escape(case)}</b>{status}</td>"
        f"<td>{figures}</td><td>{_pictures_html(pictures)}</td></tr>"
    )


def report_html(
    table: pd.DataFrame,
    pictures: Mapping[str, list[Picture]],
    options: Mapping[str, object],
    title: str = "tumorseg report",
    uncertainty: bool = False,
) -> str:
    """The report page: summary, legend, and one row per case of ``table`` in the order of
    ``order_worst_first`` with the case's ``pictures`` (case id -> pictures in ``IMAGE_DIR``);
    ``uncertainty``: the pictures have the uncertainty panel (the legend explains it)."""
    rows = [
        _case_html(i + 1, row, pictures.get(str(row.get("case")), []))
        for i, row in enumerate(order_worst_first(table).to_dict("records"))
    ]
    return page_html(
        title,
        f"<h2>Summary</h2>\n{_summary_html(table, options)}\n"
        f"<h2>Cases, worst WT Dice first</h2>\n{_legend_html(uncertainty)}\n"
        '<table class="cases"><tbody>\n' + "\n".join(rows) + "\n</tbody></table>\n",
    )


def page_html(title: str, body: str) -> str:
    """A whole offline page: ``STYLE``, no script, an empty icon (so no request for one), the
    ``title`` as heading, then ``body`` (HTML)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"{body}</body></html>\n"
    )


def dataset_images(source: str | Path | Dataset) -> Callable[[str], np.ndarray | None]:
    """An ``image_source`` for ``CaseReport``: case id -> (X, Y, Z, 4) image of a dataset (an
    opened ``Dataset``, or the MSD/BraTS folder of one), read again from disk for each case;
    None for every case of a folder of bare label maps (no images) and for a case the dataset
    does not hold.  Raises DataError for a folder that is neither."""
    from tumorseg.data import open_dataset
    from tumorseg.inference.score import nifti_files

    if isinstance(source, Dataset):
        dataset = source
    elif nifti_files(Path(source)):
        return lambda case: None
    else:
        dataset = open_dataset(source)
    ids = set(dataset.ids)
    return lambda case: dataset[case].load()[0] if case in ids else None
