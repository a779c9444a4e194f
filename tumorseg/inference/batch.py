"""``tumorseg predict``'s library side: one case, or every case of a dataset folder.

``predict SOURCE --out OUT`` segments one case when SOURCE is a 4-channel NIfTI or a BraTS case
folder (OUT: a ``.nii.gz``/``.nii`` label map), and every case of a dataset folder otherwise
(any layout ``tumorseg.data.open_dataset`` reads, labels optional; OUT: a folder that receives
``<case>.nii.gz``).  ``plan_output`` decides which, and refuses an OUT that fits neither, before
any work.

A folder run (``predict_folder``):

- loads nothing but one case at a time: the model is passed in, loaded once;
- writes each map atomically (``tumorseg.data.save_label_map``: a hidden temporary file in OUT,
  then a rename), so a run that is stopped leaves no half-written map; SIGTERM is turned into a
  clean exit (``tumorseg.batch.terminate_cleanly``) and the hidden temporary file of a case
  killed outright (SIGKILL) is removed when that case is next predicted;
- resumes: a case whose map exists is skipped unless ``overwrite``;
- goes on past a broken case (missing, truncated, not NIfTI, wrong shape or channel count: a
  ``DataError``): its id and the reason go to stderr and to ``OUT/failures.csv``;
- does only the cases of its shard (``tumorseg.batch.Shard``), so N machines can share OUT;
- records itself in ``OUT/run.json`` (``run-shard-I-of-N.json`` for a shard).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tumorseg.batch import (
    Outcome,
    Shard,
    Tally,
    finish_record,
    read_failures,
    report_failure,
    terminate_cleanly,
    update_failures,
    write_run_record,
)
from tumorseg.data import DataError, Dataset, load_image, open_dataset
from tumorseg.data.io import NIFTI_EXTENSIONS, PathLike, find_nifti
from tumorseg.inference.settings import InferenceSettings, resolve_settings
from tumorseg.labels import BRATS_SUFFIXES


class Target(enum.Enum):
    """What ``tumorseg predict`` segments: one case into a file, or a dataset into a folder."""

    CASE = "case"
    FOLDER = "folder"


def _is_nifti_name(path: Path) -> bool:
    return path.name.endswith(NIFTI_EXTENSIONS)


def plan_output(source: PathLike, out: PathLike) -> Target:
    """Decide between one case and a folder of cases, and check ``out`` for it.

    source: a 4-channel NIfTI or a BraTS case folder (one case), or a dataset folder (many).
    out: a ``.nii.gz``/``.nii`` file for one case; a folder (existing or not, not named like a
        NIfTI file) for many.
    Raises DataError naming the path when ``source`` is missing or not a NIfTI file, or when
    ``out`` fits neither.
    """
    source, out = Path(source), Path(out)
    if not source.exists():
        raise DataError(
            f"{source}: not found. Pass a 4-channel NIfTI (.nii.gz/.nii), a BraTS case folder, or "
            f"a dataset folder (MSD or BraTS layout) to segment each of its cases."
        )
    if source.is_file() and not _is_nifti_name(source):
        raise DataError(
            f"{source}: not a NIfTI file (its name does not end in .nii.gz or .nii). Pass the "
            f"case's 4-channel NIfTI image, a BraTS case folder, or a dataset folder."
        )
    one = source.is_file() or find_nifti(source, f"*_{BRATS_SUFFIXES[0]}") is not None
    if one and (not _is_nifti_name(out) or out.is_dir()):
        raise DataError(
            f"{out}: the label map of one case is a NIfTI file; name --out with .nii.gz or "
            f".nii (e.g. {out.with_suffix('').name or 'seg'}.nii.gz). To segment every case of "
            f"a dataset into a folder, pass the dataset folder instead of {source}."
        )
    if not one and (_is_nifti_name(out) or out.is_file()):
        raise DataError(
            f"{out}: {source} is a dataset folder, so its cases are written into a folder as "
            f"<case>.nii.gz; pass a folder for --out (existing or new), not a file."
        )
    return Target.CASE if one else Target.FOLDER


def segment(image: np.ndarray, model: Any, settings: InferenceSettings | None = None) -> np.ndarray:
    """The label map of one image: (X, Y, Z, 4) raw intensities -> (X, Y, Z) uint8 (0
    background, 1 edema, 2 non-enhancing, 3 enhancing), predicted with ``settings`` (None: the
    model's manifest's; ``predict_volume``) and labelled by ``probabilities_to_labels`` at
    their threshold."""
    from tumorseg.contract import probabilities_to_labels
    from tumorseg.inference.predict import predict_volume
    from tumorseg.inference.settings import resolve_settings

    settings = resolve_settings(model, settings)
    probs = predict_volume(image, model, settings=settings)
    return probabilities_to_labels(probs, settings.threshold, settings.outputs)


def qc_path(out: PathLike, shard: Shard) -> Path:
    """The check-first list of a folder run: ``out/qc.csv`` (``qc-shard-I-of-N.csv`` for a
    shard, so shards sharing ``out`` never write one file at once)."""
    from tumorseg.inference.uncertainty import QC_CSV

    if shard.whole:
        return Path(out) / QC_CSV
    return Path(out) / f"qc-shard-{shard.index}-of-{shard.count}.csv"


def qc_files(folder: PathLike) -> list[Path]:
    """The check-first lists of a folder run: its ``qc.csv`` and its shards'
    (``qc-shard-I-of-N.csv``), oldest first (by modification time); empty when none."""
    from tumorseg.inference.uncertainty import QC_CSV

    folder = Path(folder)
    files = [*folder.glob(QC_CSV), *folder.glob("qc-shard-*-of-*.csv")]
    return sorted((p for p in files if p.is_file()), key=lambda p: (p.stat().st_mtime_ns, p.name))


def output_path(out: PathLike, case: str) -> Path:
    """Where a folder run writes ``case``'s map: ``out/<case>.nii.gz``."""
    return Path(out) / f"{case}{NIFTI_EXTENSIONS[0]}"


def _remove_stale_temporaries(target: Path) -> None:
    from tumorseg.atomic import stale_temporaries

    for tmp in stale_temporaries(target):
        tmp.unlink(missing_ok=True)


def predict_folder(
    data: PathLike | Dataset,
    out: PathLike,
    model: Any,
    settings: InferenceSettings | None = None,
    shard: Shard | None = None,
    overwrite: bool = False,
    record: dict[str, Any] | None = None,
    prog: str = "tumorseg predict",
    options: Any = None,
    resample: bool = True,
    on_case: Callable[[str, np.ndarray, Any], None] | None = None,
) -> Tally:
    """Segment this shard's cases of the dataset ``data`` into ``out/<case>.nii.gz``.

    Args:
        data: a dataset folder (read with ``open_dataset(data, strict=False)``: labels
            optional), or an opened Dataset.
        out: the output folder (created when missing).
        model, settings: as for ``segment``; the model is loaded once, by the caller.
        shard: the share of the cases to do (``tumorseg.batch.Shard``; default all).
        overwrite: predict cases whose map exists too (default: skip them).
        record: the run record (``tumorseg.batch.run_record``) to write into ``out`` at the
            start, and again with the outcome at the end; None: none.
        prog: the command name for failure lines on stderr.
        options: what to write per case (``tumorseg.inference.outputs.SaveOptions``: the
            label coding, probabilities, uncertainty; default: course-coded maps only).
        resample: resample scans at another spacing than the model's
            (``tumorseg.inference.spacing``).
        on_case: called with each written case's id, image (X, Y, Z, C) and
            ``outputs.CaseResult`` while they are in memory (e.g. ``DoubtReport.add``).

    Each written case's doubt (``tumorseg.inference.uncertainty.case_doubt``) goes into the
    check-first list ``qc_path(out, shard)``, most doubtful case first.

    Returns the ``Tally`` (written / already there / failed, and the failures).  A missing or
    unknown dataset folder raises DataError before anything is written.
    """
    from tqdm.auto import tqdm

    dataset = data if isinstance(data, Dataset) else open_dataset(data, strict=False)
    cases = {case.id: case for case in dataset}
    shard = shard or Shard()
    ids = shard.select(cases)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if record is not None:
        write_run_record(out, record, shard)
    listed = read_failures(out)
    tally = Tally()
    with terminate_cleanly():
        for cid in tqdm(ids, desc="predict", unit="case"):
            target = output_path(out, cid)
            _remove_stale_temporaries(target)
            if target.exists() and not overwrite:
                tally.add(Outcome.EXISTING)
            else:
                try:
                    image, reference = load_image(cases[cid].image_input)
                except DataError as exc:
                    report_failure(prog, cid, exc)
                    tally.add(Outcome.FAILED, cid, str(exc))
                    update_failures(out, {cid: str(exc)})
                    continue
                from tumorseg.inference.outputs import SaveOptions, run_case, write_outputs
                from tumorseg.inference.spacing import header_spacing
                from tumorseg.inference.uncertainty import update_qc

                options = options or SaveOptions()
                result = run_case(
                    image, header_spacing(reference), model, settings, resample, source=cid
                )
                if on_case is not None:
                    on_case(cid, image, result)
                del image
                threshold = (settings or resolve_settings(model)).threshold
                write_outputs(result, reference, target, options, threshold, folder=True)
                update_qc(qc_path(out, shard), [{"case": cid, **result.doubt}])
                del result
                tally.add(Outcome.WRITTEN)
            if cid in listed:  # done now: off the failures list
                update_failures(out, {}, [cid])
    if record is not None:
        outcome = {**tally.as_dict(), "failures": sorted(tally.failures)}
        write_run_record(out, finish_record(record, outcome), shard)
    return tally
