"""Implicit 3D shapes in world coordinates: ellipsoids, elliptic cylinders and tubes along polylines.

Each shape gives ``parts()``: (lo, hi, inside) triples, a world bounding box and a vectorised test, so the
rasteriser only visits voxels near the shape; and ``surface_point(rng)``: a point on the surface with its
outward normal, used to place lymph nodes at a chosen distance from an organ or vessel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3D rotation matrix."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


@dataclass
class Ellipsoid:
    centre: np.ndarray
    semi: np.ndarray                       # semi-axes (mm) along the rotated local axes
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    clip: tuple | None = None              # (world axis, lo, hi): keep only lo <= coordinate <= hi

    def __post_init__(self):
        self.centre = np.asarray(self.centre, float)
        self.semi = np.asarray(self.semi, float)
        self.rotation = np.asarray(self.rotation, float)

    def inside(self, x, y, z):
        c = self.centre.astype(np.float32)
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        total = 0
        for axis in range(3):  # local coordinate = rotation column . offset
            r = self.rotation[:, axis].astype(np.float32)
            total = total + ((r[0] * dx + r[1] * dy + r[2] * dz) / np.float32(self.semi[axis])) ** 2
        mask = total <= 1.0
        if self.clip is not None:
            axis, lo, hi = self.clip
            coordinate = (x, y, z)[axis]
            mask &= (coordinate >= lo) & (coordinate <= hi)
        return mask

    def parts(self):
        extent = np.sqrt(((self.rotation * self.semi[None, :]) ** 2).sum(1))  # half-size of the bounding box
        return [(self.centre - extent, self.centre + extent, self.inside)]

    def surface_point(self, rng: np.random.Generator):
        v = unit(rng)
        point = self.centre + self.rotation @ (self.semi * v)
        normal = self.rotation @ (v / self.semi)
        return point, normal / np.linalg.norm(normal)

    def contains_point(self, p) -> bool:
        p = np.asarray(p, float)
        return bool(self.inside(*(np.float32(v) for v in p)))


@dataclass
class EllipticCylinder:
    """An ellipse in the axial (x, y) plane extruded over [z0, z1]."""

    cx: float
    cy: float
    ax: float
    ay: float
    z0: float
    z1: float

    def inside(self, x, y, z):
        return (((x - self.cx) / self.ax) ** 2 + ((y - self.cy) / self.ay) ** 2 <= 1.0) & (z >= self.z0) & (z <= self.z1)

    def parts(self):
        return [(np.array([self.cx - self.ax, self.cy - self.ay, self.z0]),
                 np.array([self.cx + self.ax, self.cy + self.ay, self.z1]), self.inside)]

    def surface_point(self, rng: np.random.Generator):
        t = rng.uniform(0, 2 * np.pi)
        point = np.array([self.cx + self.ax * np.cos(t), self.cy + self.ay * np.sin(t), rng.uniform(self.z0, self.z1)])
        normal = np.array([np.cos(t) / self.ax, np.sin(t) / self.ay, 0.0])
        return point, normal / np.linalg.norm(normal)


@dataclass
class Tube:
    """A tube of radius r (linearly interpolated between vertices) around a polyline."""

    points: np.ndarray
    radii: np.ndarray

    def __post_init__(self):
        self.points = np.asarray(self.points, float)
        self.radii = np.broadcast_to(np.asarray(self.radii, float), (len(self.points),)).copy()

    def _segment_test(self, a, b, ra, rb):
        a32, d32 = a.astype(np.float32), (b - a).astype(np.float32)
        length2 = np.float32(max(float(d32 @ d32), 1e-9))

        def inside(x, y, z):
            t = ((x - a32[0]) * d32[0] + (y - a32[1]) * d32[1] + (z - a32[2]) * d32[2]) / length2
            t = np.clip(t, 0.0, 1.0)
            r = np.float32(ra) + (np.float32(rb) - np.float32(ra)) * t
            return (x - a32[0] - t * d32[0]) ** 2 + (y - a32[1] - t * d32[1]) ** 2 + (z - a32[2] - t * d32[2]) ** 2 <= r * r

        return inside

    def parts(self):
        out = []
        for n in range(len(self.points) - 1):
            a, b = self.points[n], self.points[n + 1]
            r = max(self.radii[n], self.radii[n + 1])
            out.append((np.minimum(a, b) - r, np.maximum(a, b) + r,
                        self._segment_test(a, b, self.radii[n], self.radii[n + 1])))
        return out

    def surface_point(self, rng: np.random.Generator):
        lengths = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        n = rng.choice(len(lengths), p=lengths / lengths.sum())
        t = rng.uniform()
        axis_point = self.points[n] + t * (self.points[n + 1] - self.points[n])
        tangent = (self.points[n + 1] - self.points[n]) / max(lengths[n], 1e-9)
        normal = unit(rng)
        normal -= (normal @ tangent) * tangent
        normal /= np.linalg.norm(normal)
        radius = self.radii[n] + t * (self.radii[n + 1] - self.radii[n])
        return axis_point + radius * normal, normal

    def distance(self, p) -> float:
        """Distance from point p to the tube surface (negative inside)."""
        p = np.asarray(p, float)
        best = np.inf
        for n in range(len(self.points) - 1):
            a, d = self.points[n], self.points[n + 1] - self.points[n]
            t = float(np.clip((p - a) @ d / max(d @ d, 1e-9), 0, 1))
            r = self.radii[n] + t * (self.radii[n + 1] - self.radii[n])
            best = min(best, float(np.linalg.norm(p - a - t * d)) - r)
        return best


@dataclass
class Within:
    """A shape cut to the inside of a container (the lungs to the body cavity: they never reach the skin)."""

    shape: object
    container: object

    def inside(self, x, y, z):
        return self.shape.inside(x, y, z) & self.container.inside(x, y, z)

    def parts(self):
        return [(lo, hi, lambda x, y, z, part=part: part(x, y, z) & self.container.inside(x, y, z))
                for lo, hi, part in self.shape.parts()]


def bent_tube(rng: np.random.Generator, start, direction, length: float, radius: float, bend: float = 0.4,
              steps: int = 4) -> Tube:
    """A short, gently curving tube (an unlabelled vessel or bowel loop)."""
    points = [np.asarray(start, float)]
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    for _ in range(steps):
        d = d + bend * unit(rng)
        d /= np.linalg.norm(d)
        points.append(points[-1] + d * length / steps)
    return Tube(np.array(points), radius)
