"""Per-case brain anatomy for the synthetic dataset, warped from the MNI ICBM152 2009a atlas.

The vendored atlas (``tumorseg/data/mni``) holds a skull-stripped T1 template and grey/white
matter probability maps on a (197, 233, 189) 1 mm grid (RAS axes: x left->right,
y posterior->anterior, z inferior->superior).  Each synthetic case places the brain in the
BraTS (240, 240, 155) grid, centred in x/y and cropped in z like BraTS, and resamples the atlas
through its own smooth random deformation: a small rotation and scaling, a left-right
asymmetry, a low-frequency random displacement and, around a tumour, a radial mass effect.

Only numpy, scipy and nibabel are used, so this imports fast in worker processes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from tumorseg.resources import mni_file

GRID = (240, 240, 155)  # BraTS / MSD Task01 volume shape, 1 mm isotropic
MNI_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
# Output sub-box that always contains the (deformed) brain; everything outside it stays 0.
CROP = (slice(34, 206), slice(15, 225), slice(0, 155))
COARSE = 4  # node spacing (voxels) of the low-resolution deformation grid


@dataclass(frozen=True)
class Atlas:
    """The MNI templates as float32 arrays on the atlas grid (197, 233, 189).

    gm, wm: tissue probabilities in [0, 1]; brain: 1 inside the skull-stripped T1, else 0;
    t1: template T1 scaled to [0, 1]; centre: brain bounding-box centre in atlas voxels;
    seeds: (N, 3) candidate tumour centres (white matter of the cerebral hemispheres).
    """

    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    t1: np.ndarray
    centre: np.ndarray
    seeds: np.ndarray


@functools.lru_cache(maxsize=1)
def load_atlas() -> Atlas:
    """Load (once per process) the vendored MNI ICBM152 2009a symmetric T1/GM/WM maps."""
    arrays = {}
    for key, name in MNI_FILES.items():
        img = nib.load(str(mni_file(name)))
        arrays[key] = np.asarray(img.dataobj, dtype=np.float32) / 255.0
    brain = (arrays["t1"] > 0).astype(np.float32)
    idx = np.argwhere(brain > 0)
    centre = (idx.min(0) + idx.max(0)) / 2.0
    # Tumour seeds: white-matter-rich voxels off the midline, in the cerebrum.
    wm_s = ndi.gaussian_filter(arrays["wm"][::2, ::2, ::2], 2.0)
    cand = np.argwhere(wm_s > 0.45) * 2.0
    rel = cand - centre
    keep = (
        (np.abs(rel[:, 0]) > 12) & (np.abs(rel[:, 0]) < 58) & (rel[:, 2] > -20) & (rel[:, 2] < 60)
    )
    keep &= (rel[:, 1] > -80) & (rel[:, 1] < 60)
    keep &= ~((rel[:, 2] < 0) & (rel[:, 1] < -35))  # low and posterior: cerebellum
    return Atlas(arrays["gm"], arrays["wm"], brain, arrays["t1"], centre, cand[keep])


@functools.lru_cache(maxsize=64)
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) float32 linear-interpolation weights, first/last samples aligned."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2) if n_in > 1 else np.zeros(n_out, int)
    frac = pos - lo
    w = np.zeros((n_out, n_in), np.float32)
    w[np.arange(n_out), lo] = 1.0 - frac
    if n_in > 1:
        w[np.arange(n_out), lo + 1] += frac
    return w


def upsample(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Trilinear upsampling of a coarse 3D field to ``shape`` (corners map to corners), float32.

    Separable: three small matrix products (BLAS), much faster than ``ndimage.zoom``.
    """
    a = coarse.astype(np.float32, copy=False)
    n0, n1, n2 = a.shape
    w0, w1, w2 = (_interp_matrix(s, n) for s, n in zip(shape, a.shape))
    a = (w0 @ a.reshape(n0, n1 * n2)).reshape(shape[0], n1, n2)
    a = np.matmul(w1, a)  # (X, Y, n2)
    a = a.reshape(-1, n2) @ w2.T
    return np.ascontiguousarray(a.reshape(shape))


def coarse_shape(shape: tuple[int, ...], step: float) -> tuple[int, ...]:
    """Node counts of a coarse grid with spacing ``step`` covering ``shape`` (ends included)."""
    return tuple(int(np.ceil((s - 1) / step)) + 1 for s in shape)


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], step: float, sigma: float = 1.0
) -> np.ndarray:
    """Unit-variance smooth random field of ``shape``; features of about ``step`` voxels.

    Built on a coarse grid (node spacing ``step``), Gaussian-smoothed by ``sigma`` nodes and
    trilinearly upsampled, so the cost is that of one zoom.
    """
    coarse = rng.standard_normal(coarse_shape(shape, step)).astype(np.float32)
    if sigma > 0:
        coarse = ndi.gaussian_filter(coarse, sigma, mode="wrap")
    coarse /= coarse.std() + 1e-6
    return upsample(coarse, shape)


def crop_shape() -> tuple[int, int, int]:
    """Shape (X, Y, Z) of the output sub-box ``CROP`` that holds the brain."""
    return tuple(s.stop - s.start for s in CROP)  # type: ignore[return-value]


def coarse_nodes() -> np.ndarray:
    """Output-grid coordinates of the coarse deformation nodes: (3, nx, ny, nz) float32."""
    shp = crop_shape()
    cs = coarse_shape(shp, COARSE)
    axes = [
        np.linspace(s.start, s.start + n - 1, c, dtype=np.float32) for s, n, c in zip(CROP, shp, cs)
    ]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def random_warp(
    rng: np.random.Generator, atlas: Atlas, z_shift: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Coarse map from output-grid nodes to atlas voxel coordinates.

    z_shift: the brain sits that many voxels lower in the output than in the atlas.
    Returns (q, lin): q (3, nx, ny, nz) float32 atlas coordinates of the ``coarse_nodes()``,
    and lin (3, 3), the linear part (output offset -> atlas offset).

    Composition of: a random rotation (a few degrees) and scaling, a left-right asymmetry
    (each hemisphere scaled differently along x), and a smooth random displacement (~2-3 mm).
    """
    nodes = coarse_nodes()
    out_centre = np.array(
        [(GRID[0] - 1) / 2, (GRID[1] - 1) / 2, atlas.centre[2] - z_shift], np.float32
    )
    d = nodes - out_centre[:, None, None, None]
    # left-right asymmetry: the two hemispheres get different widths
    s_left, s_right = 1.0 + rng.uniform(-0.06, 0.06, size=2)
    d[0] = np.where(d[0] < 0, d[0] / s_left, d[0] / s_right)
    angles = np.deg2rad(rng.uniform(-5, 5, size=3))
    scale = rng.uniform(0.92, 1.05, size=3)
    rot = np.eye(3)
    for ax, a in enumerate(angles):
        c, s = np.cos(a), np.sin(a)
        i, j = [k for k in range(3) if k != ax]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = rot @ r
    lin = (rot / scale[None, :]).astype(np.float32)  # output offset -> atlas offset
    q = np.einsum("ij,j...->i...", lin, d) + atlas.centre.astype(np.float32)[:, None, None, None]
    amp = rng.uniform(1.5, 3.0)
    for k in range(3):
        n = rng.standard_normal(q.shape[1:]).astype(np.float32)
        n = ndi.gaussian_filter(n, 2.0)
        q[k] += amp * n / (n.std() + 1e-6)
    return q, lin


def mass_effect(nodes: np.ndarray, centre: np.ndarray, r0: float, reach: float) -> np.ndarray:
    """Radial displacement (3, ...) that pushes anatomy away from ``centre`` (output voxels).

    A ball of radius ``r0`` is inserted: tissue found at radius ``r`` in the deformed brain
    comes from radius ``cbrt(r^3 - r0^3)`` (volume conserving), blended out beyond ``reach``.
    Returns p_eff - p, to be mapped through the linear part of the warp.
    """
    d = nodes - centre.astype(np.float32)[:, None, None, None]
    r = np.sqrt((d**2).sum(0)) + 1e-3
    r_src = np.cbrt(np.maximum(r**3 - r0**3, 0.0))
    w = np.exp(-((r / reach) ** 2))
    r_new = r - (r - r_src) * w
    return d * (r_new / r - 1.0)


def sample_atlas(atlas: Atlas, q: np.ndarray, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Resample the atlas through the coarse warp ``q`` (3, nx, ny, nz) onto ``shape``.

    Returns float32 arrays of ``shape`` for "brain", "gm" and "wm".  Only voxels near the
    brain (found on the coarse grid first) are interpolated; the rest are 0.
    """
    near = (
        ndi.map_coordinates(
            atlas.brain, q, order=1, mode="constant", cval=0.0, prefilter=False, output=np.float32
        )
        > 0
    )
    near = ndi.binary_dilation(near, iterations=1)
    mask = upsample(near.astype(np.float32), shape) > 0.01
    coords = np.stack([upsample(q[i], shape)[mask] for i in range(3)])
    out = {}
    for key in ("brain", "gm", "wm"):
        vals = ndi.map_coordinates(
            getattr(atlas, key),
            coords,
            order=1,
            mode="constant",
            cval=0.0,
            prefilter=False,
            output=np.float32,
        )
        full = np.zeros(shape, np.float32)
        full[mask] = vals
        out[key] = full
    return out
