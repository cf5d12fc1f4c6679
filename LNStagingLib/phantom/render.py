"""Rasterise the phantom into label maps and synthesise CT (HU) and PET (SUV) from them.

Work is done in slabs so that a 512x512x300 case never holds a float copy of the whole volume: the tissue map
(uint8) and object map (uint16) are the only full-size intermediates.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import NODE_ALLOWED, N_TISSUES, TISSUE, TISSUES, Anatomy
from .grid import Grid
from .lesions import Lesion


def paint_anatomy(grid: Grid, anatomy: Anatomy) -> np.ndarray:
    tissue = np.zeros(grid.shape, np.uint8)
    for structure in anatomy.structures:
        for lo, hi, inside in structure.shape.parts():
            grid.paint(tissue, lo, hi, inside, structure.tissue)
    return tissue


def paint_lesion(grid: Grid, tissue: np.ndarray, objects: np.ndarray, lesion: Lesion, index: int) -> int:
    """Paint lesion number ``index`` (1-based) as codes 2*index (body) and 2*index+1 (core) into free fat."""
    body, core = 2 * index, 2 * index + 1

    def free(box):
        return np.isin(tissue[box], NODE_ALLOWED) & (objects[box] == 0)

    count = 0
    for lo, hi, inside in lesion.body.parts():
        count += grid.paint(objects, lo, hi, inside, body, where=free)
    i, j, k = np.round(grid.to_index(lesion.centre)).astype(int)
    if objects[k, j, i] == 0 and tissue[k, j, i] in NODE_ALLOWED:
        objects[k, j, i] = body  # even a 3 mm node owns its centre voxel
        count += 1
    if lesion.core is not None:
        for lo, hi, inside in lesion.core.parts():
            grid.paint(objects, lo, hi, inside, core, where=lambda box: objects[box] == body)
    return count


def lookup_tables(lesions: list[Lesion], tumor_suv: float):
    """Per-code HU and SUV for tissues and for lesion bodies/cores."""
    tissue_hu = np.array([t.hu for t in TISSUES], np.float32)
    tissue_suv = np.array([t.suv for t in TISSUES], np.float32)
    tissue_suv[TISSUE["tumor"]] = tumor_suv
    tissue_suv[TISSUE["tumor_necrosis"]] = 0.3 * tumor_suv
    n = 2 * len(lesions) + 2
    obj_hu, obj_suv = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for index, lesion in enumerate(lesions, start=1):
        obj_hu[2 * index], obj_suv[2 * index] = lesion.hu, lesion.suv
        obj_hu[2 * index + 1], obj_suv[2 * index + 1] = lesion.core_hu, lesion.core_suv
    assert len(tissue_hu) == N_TISSUES
    return tissue_hu, tissue_suv, obj_hu, obj_suv


def _values(tissue, objects, tissue_lut, obj_lut):
    out = tissue_lut[tissue]
    mask = objects > 0
    out[mask] = obj_lut[objects[mask]]
    return out


def synthesize_ct(grid: Grid, tissue, objects, tissue_hu, obj_hu, rng, noise_hu: float = 14.0,
                  blur_mm: float = 0.6) -> np.ndarray:
    """CT (int16 HU): tissue values, a slight partial-volume blur, white noise."""
    ct = np.empty(grid.shape, np.int16)
    sigma = [blur_mm / s for s in grid.spacing[::-1]]
    margin = int(np.ceil(4 * sigma[0])) + 1
    nz = grid.shape[0]
    for slab in grid.slabs((slice(0, nz), slice(0, grid.shape[1]), slice(0, grid.shape[2])), 3_000_000):
        k0, k1 = max(slab[0].start - margin, 0), min(slab[0].stop + margin, nz)
        values = _values(tissue[k0:k1], objects[k0:k1], tissue_hu, obj_hu)
        values = ndimage.gaussian_filter(values, sigma, mode="nearest")[slab[0].start - k0:slab[0].stop - k0]
        values += rng.standard_normal(values.shape, dtype=np.float32) * np.float32(noise_hu)
        ct[slab[0]] = np.clip(np.rint(values), -1024, 3071).astype(np.int16)
    return ct


def synthesize_pet(grid: Grid, tissue, objects, tissue_suv, obj_suv, factors, rng, fwhm_mm: float = 6.5,
                   noise: float = 0.3) -> tuple[Grid, np.ndarray]:
    """PET (float32 SUV) on a coarser grid: block-mean activity, Poisson-like noise, Gaussian PSF blur."""
    pet_grid = grid.downsampled(factors)
    fx, fy, fz = factors
    nx, ny, nz = pet_grid.size
    activity = np.empty(pet_grid.shape, np.float32)
    step = max(1, 2_000_000 // (grid.shape[1] * grid.shape[2] * fz))
    for z0 in range(0, nz, step):
        z1 = min(z0 + step, nz)
        values = _values(tissue[z0 * fz:z1 * fz, :ny * fy, :nx * fx], objects[z0 * fz:z1 * fz, :ny * fy, :nx * fx],
                         tissue_suv, obj_suv)
        activity[z0:z1] = values.reshape(z1 - z0, fz, ny, fy, nx, fx).mean(axis=(1, 3, 5))
    activity += rng.standard_normal(activity.shape, dtype=np.float32) * np.float32(noise) * np.sqrt(activity)
    sigma = [fwhm_mm / 2.3548 / s for s in pet_grid.spacing[::-1]]
    pet = ndimage.gaussian_filter(activity, sigma, mode="nearest")
    pet *= 1 + 0.03 * rng.standard_normal(pet.shape, dtype=np.float32)
    return pet_grid, np.maximum(pet, 0).astype(np.float32)


def max_in_sphere(grid: Grid, volume: np.ndarray, centre: np.ndarray, radius: float) -> float:
    """Largest value of ``volume`` at voxels within ``radius`` mm (at least the nearest voxel) of ``centre``."""
    reach = radius + 0.5 * max(grid.spacing)
    box = grid.index_box(centre - reach, centre + reach)
    i, j, k = np.clip(np.round(grid.to_index(centre)).astype(int), 0, np.asarray(grid.size) - 1)
    best = float(volume[k, j, i])
    if box is None:
        return best
    x, y, z = grid.world_coordinates(box)
    inside = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= reach ** 2
    if inside.any():
        best = max(best, float(volume[box][inside].max()))
    return best
