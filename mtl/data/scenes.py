"""Procedural indoor scenes with exact dense labels, written in the NYUD_MT layout.

Each scene is an open-topped room (a floor and four walls) holding a few
spheres, boxes and cylinders, seen by a pinhole camera and ray cast
analytically, one vectorised numpy pass per surface. Every label is exact for
the pixel centre's ray:

- semantic class: 0 floor, 1 wall, 2 sphere, 3 box, 4 cylinder; a ray that
  leaves through the open top (the sky) hits nothing and is void. On disk
  class k is stored as k + 1 and void as 0, as NYUD_MT stores its 40 classes.
- depth: metres along the optical axis (not along the ray); 0 where void.
- normals: unit vectors in the camera frame with x to the right, y up and z
  towards the viewer (out of the image), so every visible surface has a
  normal pointing back at the camera and a floor seen from above has y > 0;
  a horizontal flip negates x. All-zero where void.
- edges: occlusion and object boundaries. Every surface (the floor, each wall,
  each object) has its own id; a pixel is an edge when a 4-neighbour belongs to
  another surface (or the sky) and the pixel is the nearer of the two, which
  covers every depth discontinuity and gives boundaries one pixel thick.
- image: Lambertian shading under one directional light plus ambient light,
  shadows cast by the objects, random colours, tiled floor, striped walls,
  a sky gradient and sensor noise; saved as JPEG.

:class:`ScenesDataModule` renders a set once into a cache folder and reads it
back with the NYUD_MT loader.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hydra.utils import to_absolute_path
from PIL import Image
from tqdm import tqdm

from mtl.data.nyud import NYUDDataModule

log = logging.getLogger(__name__)

CLASS_NAMES = ("floor", "wall", "sphere", "box", "cylinder")
NUM_CLASSES = len(CLASS_NAMES)
FLOOR, WALL, SPHERE, BOX, CYLINDER = range(NUM_CLASSES)
VOID = -1
RENDERER_VERSION = 1
SPLITS = ("train", "val")

_EPS = 1e-6  # the nearest distance along a ray that counts as a hit (metres)
_SHADOW_OFFSET = 1e-4  # shadow rays start this far off the surface (metres)


# Scene description -------------------------------------------------------------------------


@dataclass
class Camera:
    """A pinhole camera at ``position`` (world metres), turned by ``yaw`` then tilted by ``pitch``.

    The world frame has X to the right, Y up and Z towards the camera; with zero
    yaw and pitch the camera looks along -Z. A positive yaw turns it to the
    left, a negative pitch looks down. ``fov_deg`` is the horizontal field of view.
    """

    position: tuple[float, float, float]
    yaw: float = 0.0
    pitch: float = 0.0
    fov_deg: float = 60.0

    def rotation(self) -> np.ndarray:
        """The 3 x 3 matrix whose columns are the camera's x, y, z axes in world coordinates."""
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
        pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
        return yaw @ pitch

    def focal(self, width: int) -> float:
        """The focal length in pixels for an image ``width`` pixels wide."""
        return width / (2.0 * math.tan(math.radians(self.fov_deg) / 2.0))

    def rays(self, height: int, width: int) -> np.ndarray:
        """Camera-frame ray directions through the pixel centres, (H * W, 3), with z = -1."""
        focal = self.focal(width)
        columns = (np.arange(width) + 0.5 - width / 2.0) / focal
        rows = -(np.arange(height) + 0.5 - height / 2.0) / focal
        x, y = np.meshgrid(columns, rows)
        return np.stack([x.ravel(), y.ravel(), -np.ones(x.size)], axis=1)


@dataclass
class Room:
    """An open-topped room: floor Y = 0, walls X = +-width/2, Z = -depth and Z = 0, up to height."""

    width: float
    depth: float
    height: float
    floor_color: tuple[float, float, float] = (0.6, 0.5, 0.4)
    wall_color: tuple[float, float, float] = (0.8, 0.8, 0.75)
    tile_size: float = 0.5
    stripe_period: float = 0.3

    def surfaces(self) -> list[tuple[int, int, float, np.ndarray]]:
        """(class, axis, coordinate, inward normal) of the floor and the four walls."""
        half = self.width / 2.0
        return [
            (FLOOR, 1, 0.0, np.array([0.0, 1.0, 0.0])),
            (WALL, 0, -half, np.array([1.0, 0.0, 0.0])),
            (WALL, 0, half, np.array([-1.0, 0.0, 0.0])),
            (WALL, 2, -self.depth, np.array([0.0, 0.0, 1.0])),
            (WALL, 2, 0.0, np.array([0.0, 0.0, -1.0])),
        ]

    def bounds(self) -> np.ndarray:
        """(3, 2) min and max of X, Y, Z inside the room."""
        half = self.width / 2.0
        return np.array([[-half, half], [0.0, self.height], [-self.depth, 0.0]])


@dataclass
class Sphere:
    """A sphere of ``radius`` around ``center``."""

    center: tuple[float, float, float]
    radius: float
    color: tuple[float, float, float] = (0.8, 0.2, 0.2)
    label: int = SPHERE

    def intersect(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Nearest hit distance (inf for a miss) and outward unit normal, per ray."""
        offset = origins - np.asarray(self.center)
        a = np.einsum("ij,ij->i", directions, directions)
        b = 2.0 * np.einsum("ij,ij->i", directions, offset)
        c = np.einsum("ij,ij->i", offset, offset) - self.radius**2
        disc = b * b - 4.0 * a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        near = (-b - root) / (2.0 * a)
        far = (-b + root) / (2.0 * a)
        t = np.where(near > _EPS, near, far)
        t = np.where((disc >= 0) & (t > _EPS), t, np.inf)

        points = origins + np.where(np.isfinite(t), t, 0.0)[:, None] * directions
        normals = (points - np.asarray(self.center)) / self.radius
        return t, normals


@dataclass
class Box:
    """A box of ``half_size`` (X, Y, Z) around ``center``, turned by ``yaw`` about the vertical."""

    center: tuple[float, float, float]
    half_size: tuple[float, float, float]
    yaw: float = 0.0
    color: tuple[float, float, float] = (0.2, 0.6, 0.2)
    label: int = BOX

    def _rotation(self) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    def intersect(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Nearest hit distance (inf for a miss) and outward unit normal, per ray."""
        rotation = self._rotation()
        local_origins = (origins - np.asarray(self.center)) @ rotation
        local_directions = directions @ rotation
        half = np.asarray(self.half_size)

        # the slab method: the ray is inside the box between its last entry and first exit
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-half - local_origins) / local_directions
            t2 = (half - local_origins) / local_directions
        entry = np.minimum(t1, t2)
        exit_ = np.maximum(t1, t2)
        # a ray parallel to a slab is inside it for all t, or for none
        parallel = local_directions == 0
        inside = np.abs(local_origins) <= half
        entry = np.where(parallel, np.where(inside, -np.inf, np.inf), entry)
        exit_ = np.where(parallel, np.where(inside, np.inf, -np.inf), exit_)

        t_near = entry.max(axis=1)
        t_far = exit_.min(axis=1)
        hit = (t_near <= t_far) & (t_far > _EPS)
        t = np.where(hit, np.where(t_near > _EPS, t_near, t_far), np.inf)

        # the face hit is the slab of the last entry (or, from inside, of the first exit)
        entering = t_near > _EPS
        axis = np.where(entering, entry.argmax(axis=1), exit_.argmin(axis=1))
        rows = np.arange(len(t))
        sign = np.where(entering, -1.0, 1.0) * np.sign(local_directions[rows, axis])
        local_normals = np.zeros_like(local_origins)
        local_normals[rows, axis] = sign
        return t, local_normals @ rotation.T


@dataclass
class Cylinder:
    """An upright cylinder standing on the floor at (``x``, ``z``), with caps."""

    x: float
    z: float
    radius: float
    height: float
    color: tuple[float, float, float] = (0.2, 0.3, 0.8)
    label: int = CYLINDER

    def intersect(self, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Nearest hit distance (inf for a miss) and outward unit normal, per ray."""
        dx, dy, dz = directions.T
        ox, oy, oz = origins[:, 0] - self.x, origins[:, 1], origins[:, 2] - self.z

        # the side: (ox + t dx)^2 + (oz + t dz)^2 = r^2 with 0 <= y <= height
        a = dx * dx + dz * dz
        b = 2.0 * (ox * dx + oz * dz)
        c = ox * ox + oz * oz - self.radius**2
        disc = b * b - 4.0 * a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.sqrt(np.maximum(disc, 0.0))
            candidates = [(-b - root) / (2.0 * a), (-b + root) / (2.0 * a)]
        side = np.full(len(origins), np.inf)
        for candidate in candidates:
            y = oy + candidate * dy
            ok = (disc >= 0) & (a > 0) & (candidate > _EPS) & (y >= 0) & (y <= self.height)
            side = np.where(ok & (candidate < side), candidate, side)

        # the caps: y = 0 and y = height, inside the circle
        caps = []
        for level in (0.0, self.height):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (level - oy) / dy
                radial = (ox + t * dx) ** 2 + (oz + t * dz) ** 2
            ok = (dy != 0) & (t > _EPS) & (radial <= self.radius**2)
            caps.append(np.where(ok, t, np.inf))

        stacked = np.stack([side, *caps], axis=1)
        which = stacked.argmin(axis=1)
        t = stacked[np.arange(len(origins)), which]

        safe_t = np.where(np.isfinite(t), t, 0.0)
        px, pz = ox + safe_t * dx, oz + safe_t * dz
        normals = np.stack([px / self.radius, np.zeros_like(px), pz / self.radius], axis=1)
        normals[which == 1] = (0.0, -1.0, 0.0)
        normals[which == 2] = (0.0, 1.0, 0.0)
        return t, normals


Shape = Sphere | Box | Cylinder


@dataclass
class Scene:
    """Everything a render needs: room, camera, objects, light and noise level."""

    room: Room
    camera: Camera
    objects: list[Shape] = field(default_factory=list)
    light_direction: tuple[float, float, float] = (0.3, 1.0, 0.5)
    ambient: float = 0.3
    sky_color: tuple[float, float, float] = (0.55, 0.7, 0.95)
    noise: float = 0.02


@dataclass
class Rendering:
    """The exact maps of one scene at one size; class ids are 0..4 with -1 = void."""

    image: np.ndarray  # uint8 (H, W, 3)
    semseg: np.ndarray  # int64 (H, W), -1 = void
    depth: np.ndarray  # float32 (H, W), metres along the optical axis, 0 = void
    normals: np.ndarray  # float32 (H, W, 3), camera frame, 0 = void
    edge: np.ndarray  # float32 (H, W) in {0, 1}
    surface: np.ndarray  # int64 (H, W), the surface each pixel sees, -1 = void


# Sampling ------------------------------------------------------------------------------------


def _color(
    rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]
) -> tuple[float, float, float]:
    hue = rng.uniform(0, 1)
    s, v = rng.uniform(*saturation), rng.uniform(*value)
    channel = np.array([0.0, 2.0 / 3.0, 1.0 / 3.0])
    rgb = v * (1 - s + s * (0.5 + 0.5 * np.cos(2 * np.pi * (hue + channel))))
    return tuple(float(x) for x in rgb)


def sample_scene(rng: np.random.Generator) -> Scene:
    """A random room with 2 to 5 objects in front of the camera."""
    room = Room(
        width=rng.uniform(4.0, 7.0),
        depth=rng.uniform(5.0, 9.0),
        height=rng.uniform(2.4, 3.2),
        floor_color=_color(rng, (0.1, 0.5), (0.35, 0.7)),
        wall_color=_color(rng, (0.0, 0.3), (0.6, 0.9)),
        tile_size=rng.uniform(0.3, 0.8),
        stripe_period=rng.uniform(0.15, 0.6),
    )
    camera = Camera(
        position=(rng.uniform(-room.width / 4, room.width / 4), rng.uniform(1.2, 1.8), -0.4),
        yaw=math.radians(rng.uniform(-25, 25)),
        pitch=math.radians(rng.uniform(-35, -10)),
    )

    objects: list[Shape] = []
    bounds = room.bounds()
    for _ in range(rng.integers(2, 6)):
        kind = rng.integers(3)
        bearing = camera.yaw + math.radians(rng.uniform(-22, 22))
        distance = rng.uniform(1.6, 5.5)
        x = camera.position[0] - distance * math.sin(bearing)
        z = camera.position[2] - distance * math.cos(bearing)
        color = _color(rng, (0.4, 0.9), (0.4, 0.95))
        if kind == 0:
            size = rng.uniform(0.25, 0.6)
        elif kind == 1:
            half_size = tuple(rng.uniform(0.2, 0.5, size=3))
            size = math.hypot(half_size[0], half_size[2])
        else:
            size = rng.uniform(0.15, 0.4)
        x = float(np.clip(x, bounds[0, 0] + size, bounds[0, 1] - size))
        z = float(np.clip(z, bounds[2, 0] + size, -1.5))

        if kind == 0:
            objects.append(Sphere((x, size, z), size, color))
        elif kind == 1:
            center = (x, half_size[1], z)
            objects.append(Box(center, half_size, rng.uniform(0, math.pi / 2), color))
        else:
            objects.append(Cylinder(x, z, size, rng.uniform(0.4, 1.5), color))

    elevation = math.radians(rng.uniform(35, 70))
    azimuth = rng.uniform(0, 2 * math.pi)
    light = (
        math.cos(elevation) * math.cos(azimuth),
        math.sin(elevation),
        math.cos(elevation) * math.sin(azimuth),
    )
    return Scene(
        room,
        camera,
        objects,
        light_direction=light,
        ambient=rng.uniform(0.2, 0.4),
        sky_color=_color(rng, (0.2, 0.5), (0.8, 1.0)),
    )


# Ray casting ---------------------------------------------------------------------------------


def _room_hits(room: Room, origins: np.ndarray, directions: np.ndarray) -> list[tuple]:
    """(t, normals, class) of each room surface; walls end at the room's height."""
    bounds = room.bounds()
    slack = 1e-9
    hits = []
    for label, axis, coordinate, normal in room.surfaces():
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (coordinate - origins[:, axis]) / directions[:, axis]
        points = origins + np.where(np.isfinite(t), t, 0.0)[:, None] * directions
        ok = (directions[:, axis] != 0) & (t > _EPS)
        for other in range(3):
            if other != axis:
                low, high = bounds[other]
                ok &= (points[:, other] >= low - slack) & (points[:, other] <= high + slack)
        hits.append((np.where(ok, t, np.inf), np.broadcast_to(normal, origins.shape), label))
    return hits


def _nearest(hits: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per ray: the nearest distance, the index of the surface hit (-1 for none), its normal."""
    distances = np.stack([t for t, _, _ in hits], axis=1)
    index = distances.argmin(axis=1)
    rows = np.arange(len(index))
    t = distances[rows, index]
    normals = np.stack([n for _, n, _ in hits], axis=1)[rows, index]
    index = np.where(np.isfinite(t), index, VOID)
    return t, index, normals


def _occlusion_edges(surface: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Pixels next to another surface that are nearer than that neighbour (void is farthest)."""
    far = np.where(surface == VOID, np.inf, depth)
    edge = np.zeros(surface.shape, dtype=bool)
    for axis in (0, 1):
        for step in (1, -1):
            neighbour_surface = np.roll(surface, -step, axis=axis)
            neighbour_depth = np.roll(far, -step, axis=axis)
            differs = neighbour_surface != surface
            nearer = (far < neighbour_depth) | (
                (far == neighbour_depth) & (surface < neighbour_surface)
            )
            found = differs & nearer
            # np.roll wraps around: drop what came from the opposite border
            border = [slice(None), slice(None)]
            border[axis] = slice(-1, None) if step == 1 else slice(0, 1)
            found[tuple(border)] = False
            edge |= found
    return edge


def _albedo(scene: Scene, points: np.ndarray, index: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Per-pixel surface colour with procedural texture: floor tiles, wall stripes, object mottling."""
    room = scene.room
    colors = [room.floor_color] + [room.wall_color] * 4 + [o.color for o in scene.objects]
    albedo = np.asarray(colors)[np.maximum(index, 0)]

    tiles = (np.floor(points[:, 0] / room.tile_size) + np.floor(points[:, 2] / room.tile_size)) % 2
    stripes = np.sin(2 * np.pi * (points[:, 0] + points[:, 2]) / room.stripe_period)
    mottle = np.sin(7.0 * points[:, 0]) * np.sin(7.0 * points[:, 1]) * np.sin(7.0 * points[:, 2])
    factor = np.where(index == 0, 0.88 + 0.24 * tiles, 1.0)
    factor = np.where((index >= 1) & (index <= 4), 1.0 + 0.06 * stripes, factor)
    factor = np.where(index >= 5, 1.0 + 0.12 * mottle, factor)
    return albedo * (factor + 0.05 * noise)[:, None]


def render(scene: Scene, size: Sequence[int], rng: np.random.Generator | None = None) -> Rendering:
    """Ray cast ``scene`` at ``size`` = (height, width); ``rng`` draws the texture and image noise."""
    height, width = int(size[0]), int(size[1])
    rng = rng if rng is not None else np.random.default_rng(0)
    camera = scene.camera
    rotation = camera.rotation()

    # primary rays: camera-frame directions have z = -1, so the hit distance t is the depth
    camera_rays = camera.rays(height, width)
    directions = camera_rays @ rotation.T
    origins = np.broadcast_to(np.asarray(camera.position, dtype=float), directions.shape)
    hits = _room_hits(scene.room, origins, directions)
    hits += [(*shape.intersect(origins, directions), shape.label) for shape in scene.objects]
    t, index, world_normals = _nearest(hits)
    labels = np.array([label for _, _, label in hits])
    hit = index != VOID

    # normals face the camera, then go to the camera frame
    facing = np.einsum("ij,ij->i", world_normals, directions) > 0
    world_normals = np.where(facing[:, None], -world_normals, world_normals)
    camera_normals = world_normals @ rotation

    # shading: Lambertian with ambient light; objects cast shadows
    light = np.asarray(scene.light_direction, dtype=float)
    light /= np.linalg.norm(light)
    points = origins + np.where(hit, t, 0.0)[:, None] * directions
    shadow_origins = points + _SHADOW_OFFSET * world_normals
    shadow_directions = np.broadcast_to(light, points.shape)
    shadowed = np.zeros(len(points), dtype=bool)
    for shape in scene.objects:
        shadowed |= np.isfinite(shape.intersect(shadow_origins, shadow_directions)[0])
    lambert = np.clip(world_normals @ light, 0.0, None) * ~shadowed
    texture_noise = rng.standard_normal(len(points))
    albedo = _albedo(scene, points, index, texture_noise)
    shade = scene.ambient + (1.0 - scene.ambient) * lambert
    rows = np.repeat(np.arange(height), width) / max(height - 1, 1)
    sky = np.asarray(scene.sky_color) * (1.0 - 0.3 * rows)[:, None]
    color = np.where(hit[:, None], albedo * shade[:, None], sky)
    color = color + scene.noise * rng.standard_normal(color.shape)
    image = (np.clip(color, 0.0, 1.0) ** (1 / 2.2) * 255.0 + 0.5).astype(np.uint8)

    semseg = np.where(hit, labels[np.maximum(index, 0)], VOID).reshape(height, width)
    depth = np.where(hit, t, 0.0).reshape(height, width)
    normals = np.where(hit[:, None], camera_normals, 0.0).reshape(height, width, 3)
    surface = index.reshape(height, width)
    return Rendering(
        image=image.reshape(height, width, 3),
        semseg=semseg.astype(np.int64),
        depth=depth.astype(np.float32),
        normals=normals.astype(np.float32),
        edge=_occlusion_edges(surface, depth).astype(np.float32),
        surface=surface.astype(np.int64),
    )


# Writing the NYUD_MT layout ------------------------------------------------------------------


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of scene ``index`` of ``split``; independent of the split sizes."""
    return np.random.default_rng([seed, SPLITS.index(split), index])


def scene_ids(split: str, count: int) -> list[str]:
    """The image ids of a split, e.g. ``train_00000``."""
    return [f"{split}_{i:05d}" for i in range(count)]


def scenes_folder(
    root: str | Path, num_train: int, num_val: int, size: Sequence[int], seed: int
) -> Path:
    """The folder under ``root`` that holds the set rendered with these settings."""
    height, width = int(size[0]), int(size[1])
    name = f"scenes_v{RENDERER_VERSION}_{height}x{width}_train{num_train}_val{num_val}_seed{seed}"
    return Path(root) / name


def _manifest(num_train: int, num_val: int, size: Sequence[int], seed: int) -> dict:
    return {
        "renderer_version": RENDERER_VERSION,
        "size": [int(size[0]), int(size[1])],
        "num_train": int(num_train),
        "num_val": int(num_val),
        "seed": int(seed),
        "classes": {name: k + 1 for k, name in enumerate(CLASS_NAMES)} | {"void": 0},
        "depth": "metres along the optical axis, 0 = no surface",
        "normals": "unit, camera frame: x right, y up, z towards the viewer; 0 = no surface",
    }


def _is_complete(folder: Path, manifest: dict) -> bool:
    manifest_file = folder / "manifest.json"
    if not manifest_file.is_file():
        return False
    try:
        if json.loads(manifest_file.read_text()) != manifest:
            return False
    except (OSError, ValueError):
        return False
    counts = {"train": manifest["num_train"], "val": manifest["num_val"]}
    for split, count in counts.items():
        ids = scene_ids(split, count)
        split_file = folder / "gt_sets" / f"{split}.txt"
        if not split_file.is_file() or split_file.read_text().split() != ids:
            return False
        for image_id in ids:
            for path in _paths(folder, image_id):
                if not path.is_file():
                    return False
    return True


def _paths(folder: Path, image_id: str) -> list[Path]:
    return [
        folder / "images" / f"{image_id}.jpg",
        folder / "segmentation" / f"{image_id}.png",
        folder / "depth" / f"{image_id}.npy",
        folder / "normals" / f"{image_id}.npy",
        folder / "edge" / f"{image_id}.npy",
    ]


def write_rendering(folder: Path, image_id: str, rendering: Rendering) -> None:
    """Write one rendering's files in the NYUD_MT formats (class k stored as k + 1, void 0)."""
    image_path, semseg_path, depth_path, normals_path, edge_path = _paths(folder, image_id)
    Image.fromarray(rendering.image).save(image_path, quality=95)
    Image.fromarray((rendering.semseg + 1).astype(np.uint8)).save(semseg_path)
    np.save(depth_path, rendering.depth.astype(np.float32))
    np.save(normals_path, rendering.normals.astype(np.float32))
    np.save(edge_path, rendering.edge.astype(np.float32))


def render_scenes(
    root: str | Path,
    num_train: int,
    num_val: int,
    size: Sequence[int] = (64, 64),
    seed: int = 0,
) -> Path:
    """Render a train and a val split in the NYUD_MT layout under ``root``; return its folder.

    Nothing is rendered when a complete set with the same settings is already
    there (checked against its ``manifest.json`` and its files). A set is
    rendered into a temporary folder and moved into place when complete, so an
    interrupted run never leaves a set that looks complete.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(
            f"render_scenes needs at least one image per split, got num_train={num_train}, "
            f"num_val={num_val}"
        )
    if len(size) != 2 or min(size) < 2:
        raise ValueError(f"size must be (height, width) of at least 2 pixels each, got {size}")
    root = Path(root)
    folder = scenes_folder(root, num_train, num_val, size, seed)
    manifest = _manifest(num_train, num_val, size, seed)
    if _is_complete(folder, manifest):
        log.debug("scenes already rendered at %s", folder)
        return folder

    started = time.perf_counter()
    temporary = root / f".{folder.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    for name in ("gt_sets", "images", "segmentation", "depth", "normals", "edge"):
        (temporary / name).mkdir(parents=True)
    total = num_train + num_val
    with tqdm(total=total, desc="rendering scenes", unit="image", disable=None) as progress:
        for split, count in (("train", num_train), ("val", num_val)):
            ids = scene_ids(split, count)
            for index, image_id in enumerate(ids):
                rng = scene_rng(seed, split, index)
                write_rendering(temporary, image_id, render(sample_scene(rng), size, rng))
                progress.update()
            (temporary / "gt_sets" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (temporary / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")

    if folder.exists():
        # an incomplete or damaged earlier set of these settings: ours to replace
        if not (folder / "manifest.json").is_file():
            shutil.rmtree(temporary)
            raise FileExistsError(
                f"{folder} exists but was not written by render_scenes (no manifest.json); "
                f"move it away or choose another root"
            )
        shutil.rmtree(folder)
    try:
        os.replace(temporary, folder)
    except OSError:
        # another process finished the same set first
        shutil.rmtree(temporary, ignore_errors=True)
        if not _is_complete(folder, manifest):
            raise
    seconds = time.perf_counter() - started
    log.info("rendered %d scenes of %s in %.1f s to %s", total, tuple(size), seconds, folder)
    return folder


# The data module -----------------------------------------------------------------------------


class ScenesDataModule(NYUDDataModule):
    """Procedural scenes, rendered once into ``root`` and read through the NYUD_MT loader.

    Targets are ``semseg`` (5 classes: floor, wall, sphere, box, cylinder; the sky
    is ignored), ``depth``, ``normals`` and ``edge``, decoded exactly as NYUD.

    Args:
        root: the cache folder the set is rendered into (relative paths are taken
            from the launch directory).
        num_train: training images.
        num_val: validation images.
        size: (height, width) of the rendered images.
        seed: the seed the scenes are drawn from.
        input_size: (height, width) the network sees; the rendered size by default.
        **kwargs: the other arguments of :class:`~mtl.data.nyud.NYUDDataModule`
            (targets, batch_size, num_workers, augment, scale_range, mean, std).
    """

    num_classes = NUM_CLASSES

    def __init__(
        self,
        root: str | Path,
        num_train: int = 800,
        num_val: int = 200,
        size: Sequence[int] = (64, 64),
        seed: int = 0,
        input_size: Sequence[int] | None = None,
        **kwargs,
    ) -> None:
        self.cache_root = Path(to_absolute_path(str(root)))
        self.num_train, self.num_val, self.seed = int(num_train), int(num_val), int(seed)
        self.size = (int(size[0]), int(size[1]))
        folder = scenes_folder(self.cache_root, num_train, num_val, self.size, seed)
        super().__init__(folder, input_size=input_size or self.size, **kwargs)

    def render(self) -> Path:
        """Render the set unless a complete copy exists; its folder."""
        return render_scenes(self.cache_root, self.num_train, self.num_val, self.size, self.seed)

    def prepare_data(self) -> None:
        """Render the set once, on one process per node."""
        self.render()

    def setup(self, stage: str | None = None) -> None:
        """Read the rendered set (rendering it first if ``prepare_data`` did not run)."""
        self.root = self.render()
        super().setup(stage)
