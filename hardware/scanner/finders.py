"""A QR code's finder patterns found by their nested squares, and a covered one put back.

A thumb over one of the three corner squares (finder patterns) hides the code
from zxing-cpp entirely: its detector needs all three to place the module grid,
even when the data under the thumb is well within what the code's error
correction repairs. When two finders are visible, where the third must be
follows from the symbol being square; `restored` paints a synthetic finder
(with its white separator) there and zxing reads the code as if the thumb were
gone, leaving the covered data modules to Reed–Solomon.

Where exactly: the two finders give the third's place to a module or two (their
axes are measured on 15–25 px squares, ~40 modules from the missing corner);
a tilted card's perspective adds a module or two more, which is enough to make
zxing sample the grid wrongly. So the guess is refined by the code's own
alignment patterns (the small squares at fixed module positions, versions 2+):
those found near where the guess puts them, with the two finders, fix a
perspective transform (`cv2.findHomography`), which then places the third finder.

A painted finder cannot make a wrong payload pass: zxing still checks every
codeword, and the kiosk checks the card's Ed25519 signature after any scan.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from cv2.typing import MatLike

from hardware.scanner.decoders import GreyImage, as_uint8

Vec = npt.NDArray[np.float64]
Axes = tuple[Vec, Vec]

# A finder is 7×7 modules: a dark ring around a white 5×5 "hole" around a dark
# 3×3 core. We look for the hole and its core (the dark ring itself often merges
# with data modules once blur closes the 1-module separator): core/hole area is
# 9/25 = 0.36 ideally; an alignment pattern's (1/9) stays well below.
_CORE_RATIO = (0.16, 0.75)
_MIN_HOLE_PX = 40.0  # a 5-module hole at 2 px per module is ~100 px²; blur shrinks it
# Alignment pattern centres (module index) by version; finder centres are N-7
# modules apart for an N×N symbol, N = 17 + 4·version.
_ALIGNMENT = {
    2: (6, 18),
    3: (6, 22),
    4: (6, 26),
    5: (6, 30),
    6: (6, 34),
    7: (6, 22, 38),
    8: (6, 24, 42),
    9: (6, 26, 46),
    10: (6, 28, 50),
    11: (6, 30, 54),
    12: (6, 32, 58),
}
_SPACING = {version: 10 + 4 * version for version in _ALIGNMENT}  # N - 7
# Nudges (in modules along the guessed finder's axes) tried after the estimate itself.
_NUDGES = ((0.0, 0.0), (0.75, 0.0), (-0.75, 0.0), (0.0, 0.75), (0.0, -0.75))


@dataclass(frozen=True)
class Finder:
    """A finder pattern's centre and its module axes (px per module, each axis)."""

    center: Vec
    axes: Axes

    @property
    def module(self) -> float:
        return float(math.sqrt(abs(np.linalg.det(np.column_stack(self.axes)))))


@dataclass(frozen=True)
class Marks:
    """What the contour pass found in a crop: finder patterns, and white square holes,
    some of which are the insides of alignment patterns: rows of x, y, side (px),
    and 1 when the hole has a single dark dot in it (an alignment pattern's centre
    module, when the modules are big enough for it to survive thresholding)."""

    finders: list[Finder]
    holes: npt.NDArray[np.float64]


def find_marks(crop: GreyImage) -> Marks:
    """Finder patterns (largest first) and square holes in `crop`, from one contour pass."""
    block = max(15, (min(crop.shape) // 8) | 1)
    binary = cv2.adaptiveThreshold(
        crop, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 4
    )
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return Marks([], np.zeros((0, 4)))
    tree = hierarchy[0]
    parent = tree[:, 3]
    # Depth in the tree: ink outlines are even, the white holes inside ink odd.
    depth = np.zeros(len(tree), np.int32)
    up = parent.copy()
    while (up >= 0).any():
        depth += up >= 0
        up = np.where(up >= 0, parent[np.maximum(up, 0)], -1)
    found: list[tuple[float, Finder]] = []
    holes: list[tuple[float, float, float, float]] = []
    for i in map(int, np.flatnonzero(depth % 2 == 1)):
        contour = contours[i]
        area = cv2.contourArea(contour)
        if area < 4:
            continue
        (cx, cy), (w, h), _ = cv2.minAreaRect(contour)
        if min(w, h) <= 0 or max(w, h) / min(w, h) > 1.6 or area < 0.6 * w * h:
            continue
        child = int(tree[i][2])
        single = child >= 0 and int(tree[child][0]) < 0
        holes.append((cx, cy, math.sqrt(w * h), float(single)))
        # A finder's hole has one child, its core.
        if not single or area < _MIN_HOLE_PX:
            continue
        if not _CORE_RATIO[0] <= cv2.contourArea(contours[child]) / area <= _CORE_RATIO[1]:
            continue
        finder = _shape(contour, contours[child])
        if finder is not None:
            found.append((area, finder))
    found.sort(key=lambda f: -f[0])
    return Marks(_distinct([f for _, f in found]), np.array(holes).reshape(-1, 4))


def _shape(hole: MatLike, core: MatLike) -> Finder | None:
    """The finder's centre and module axes from its hole and core, if they are concentric."""
    m, mc = cv2.moments(hole), cv2.moments(core)
    if m["m00"] <= 0 or mc["m00"] <= 0:
        return None
    center = np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])
    core_center = np.array([mc["m10"] / mc["m00"], mc["m01"] / mc["m00"]])
    (_, _), (w, h), angle = cv2.minAreaRect(hole)
    (_, _), (cw, ch), _ = cv2.minAreaRect(core)
    if np.linalg.norm(core_center - center) > 0.2 * math.sqrt(w * h):
        return None
    # Thresholding moves the ink's edge by some δ: the hole's side is 5 modules + 2δ,
    # the core's 3 modules - 2δ, so their sum is 8 modules whatever δ is.
    scale = (1 + math.sqrt(cw * ch / (w * h))) / 8
    a = math.radians(angle)
    u = np.array([math.cos(a), math.sin(a)]) * w * scale
    v = np.array([-math.sin(a), math.cos(a)]) * h * scale
    return Finder((center + core_center) / 2, (u, v))


def _distinct(finders: list[Finder]) -> list[Finder]:
    kept: list[Finder] = []
    for f in finders:
        if all(np.linalg.norm(f.center - k.center) > 3 * k.module for k in kept):
            kept.append(f)
    return kept


def _axes_along(finder: Finder, direction: Vec) -> Axes:
    """The finder's two module axes, the first the one closest to `direction`, both signed."""
    u, v = finder.axes
    unit = direction / np.linalg.norm(direction)
    if abs(float(v @ unit)) > abs(float(u @ unit)):
        u, v = v, u
    if float(u @ unit) < 0:
        u = -u
    return u, v


@dataclass(frozen=True)
class Guess:
    """The symbol's three finder centres (the right-angle corner first), one of them
    (`missing`: 0, 1 or 2) guessed, and the module axes there."""

    centers: tuple[Vec, Vec, Vec]
    missing: int
    axes: Axes


def guesses(a: Finder, b: Finder) -> Iterator[Guess]:
    """Where the third finder may be, given two.

    Two finders of one symbol are either on one side or on its diagonal. A side
    gives four places for the third (at either end, on either side of the line),
    a diagonal two (the square's other corners). The places follow from the two
    centres and the finders' axes alone.
    """
    delta = b.center - a.center
    try:  # delta in modules along `a`'s axes
        x, y = np.linalg.solve(np.column_stack(a.axes), delta)
    except np.linalg.LinAlgError:
        return
    lo, hi = min(_SPACING.values()) * 0.8, max(_SPACING.values()) * 1.2
    if min(abs(x), abs(y)) < 0.35 * max(abs(x), abs(y)):  # one side
        ua, va = _axes_along(a, delta)
        ub, vb = _axes_along(b, delta)
        if float(va @ vb) < 0:
            vb = -vb
        u, v = (ua + ub) / 2, (va + vb) / 2
        spacing = float(np.linalg.norm(delta) / np.linalg.norm(u))
        if not lo <= spacing <= hi:
            return
        # Square in modules: the third is as many modules from one end, along v.
        for sign in (1.0, -1.0):
            for corner, other in ((a, b), (b, a)):
                third = corner.center + sign * spacing * v
                yield Guess((corner.center, other.center, third), 2, (u, sign * v))
        return
    # A diagonal: delta = x·ax + y·ay, |x| ≈ |y|; the other corners are at x·ax and y·ay.
    if min(abs(x), abs(y)) < 0.8 * max(abs(x), abs(y)):
        return
    if not lo <= (abs(x) + abs(y)) / 2 <= hi:
        return
    ax, ay = a.axes[0] * math.copysign(1, x), a.axes[1] * math.copysign(1, y)
    for corner in (a.center + abs(x) * ax, a.center + abs(y) * ay):
        yield Guess((corner, a.center, b.center), 0, (ax, ay))


def refined(guess: Guess, holes: npt.NDArray[np.float64], module: float) -> list[Guess]:
    """`guess` corrected by the alignment patterns found where it puts them: one
    corrected guess per plausible version, or `[guess]` when none fits.

    For the two versions whose finder spacing is nearest the measured one, the
    guess (an affine grid through the three centres) predicts the alignment
    patterns' centres; a square hole of about 3 modules (preferably with a dot
    in it) within 2 modules of one is taken for it. An affine fit of those
    (RANSAC, with the two real finders) predicts them again, now to within a
    module; with at least five points a homography from module to crop
    coordinates, else that affine map, places the missing finder and gives its
    axes. Neighbouring versions put their alignment patterns at almost the same
    fractions of the symbol, so both often match (the finders' measured size is
    not precise enough to tell 38 from 42 modules apart); they place the missing
    finder about half a module apart, and both are returned, the one that found
    more alignment patterns within a module first.
    """
    corner, arm_x, arm_y = guess.centers
    measured = float(np.linalg.norm(arm_x - corner) + np.linalg.norm(arm_y - corner)) / 2 / module
    fits = []
    for version in sorted(_SPACING, key=lambda v: abs(_SPACING[v] - measured))[:2]:
        fit = _fitted(guess, holes, module, version)
        if fit is not None:
            fits.append(fit)
    fits.sort(key=lambda f: -f[1])  # more alignment patterns within a module first
    return [f[0] for f in fits] or [guess]


def _fitted(
    guess: Guess, holes: npt.NDArray[np.float64], module: float, version: int
) -> tuple[Guess, int] | None:
    """`guess` placed by the alignment patterns of `version`, and how many of them
    were found; None when fewer than two (see `refined`)."""
    corner, arm_x, arm_y = guess.centers
    spacing = _SPACING[version]
    targets = _alignment_centers(version)
    grid = np.column_stack([arm_x - corner, arm_y - corner])
    predicted = corner + (targets - 3.5) @ grid.T / spacing
    found, points = _match(holes, predicted, module, 2.0)
    if len(points) < 2:
        return None
    known = [i for i in range(3) if i != guess.missing]
    src = np.vstack([[_finder_at(i, spacing) for i in known], targets[found]])
    dst = np.vstack([[guess.centers[i] for i in known], points])
    affine, _ = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=module)
    if affine is None:
        return None
    predicted = targets @ affine[:, :2].T + affine[:, 2]
    found, points = _match(holes, predicted, module, 1.0)
    src = np.vstack([[_finder_at(i, spacing) for i in known], targets[found]])
    dst = np.vstack([[guess.centers[i] for i in known], points])
    homography = np.vstack([affine, [0.0, 0.0, 1.0]])
    if len(src) >= 5:
        fitted, _ = cv2.findHomography(src, dst, cv2.RANSAC, 0.7 * module)
        if fitted is not None:
            homography = np.asarray(fitted, np.float64)
    at = _finder_at(guess.missing, spacing)
    center = _project(homography, at)
    if np.linalg.norm(center - guess.centers[guess.missing]) > 6 * module:
        return None  # a wild fit (data holes taken for alignment patterns)
    axes = (
        _project(homography, at + np.array([1.0, 0.0])) - center,
        _project(homography, at + np.array([0.0, 1.0])) - center,
    )
    centers = list(guess.centers)
    centers[guess.missing] = center
    return Guess((centers[0], centers[1], centers[2]), guess.missing, axes), int(found.sum())


def _alignment_centers(version: int) -> npt.NDArray[np.float64]:
    """Module coordinates of a version's alignment pattern centres (none under a finder)."""
    positions = _ALIGNMENT[version]
    first, last = positions[0], positions[-1]
    corners = {(first, first), (first, last), (last, first)}
    return np.array(
        [(x + 0.5, y + 0.5) for x in positions for y in positions if (x, y) not in corners],
        np.float64,
    )


def _match(
    holes: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64], module: float, radius: float
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Which predicted alignment centres have a ~3-module hole within `radius` modules,
    and those holes' centres."""
    sized = holes[(holes[:, 2] >= 2.2 * module) & (holes[:, 2] <= 3.8 * module)]
    if not len(sized):
        return np.zeros(len(predicted), np.bool_), np.zeros((0, 2))
    distance = np.linalg.norm(predicted[:, None, :] - sized[None, :, :2], axis=2)
    # A dotted hole is much likelier an alignment pattern than a gap among data modules.
    score = distance - sized[None, :, 3] * 0.5 * module
    nearest = score.argmin(axis=1)
    found = distance[np.arange(len(predicted)), nearest] < radius * module
    return np.asarray(found, np.bool_), sized[nearest[found], :2]


def _finder_at(index: int, spacing: int) -> Vec:
    """Module coordinates of a finder centre: 0 the right-angle corner, 1 and 2 its arms."""
    return np.array([(3.5, 3.5), (spacing + 3.5, 3.5), (3.5, spacing + 3.5)][index])


def _project(homography: npt.NDArray[np.float64], point: Vec) -> Vec:
    x, y, w = homography @ np.array([point[0], point[1], 1.0])
    return np.array([x / w, y / w])


def paint_finder(image: GreyImage, center: Vec, axes: Axes, ink: float, paper: float) -> GreyImage:
    """A copy of `image` with a finder pattern and its separator painted at `center`."""
    out = image.copy()
    u, v = axes
    for half, shade in ((4.5, paper), (3.5, ink), (2.5, paper), (1.5, ink)):
        corners = [
            center + half * (su * u + sv * v) for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
        pts = np.round(np.array(corners) * 16).astype(np.int32)
        cv2.fillConvexPoly(out, pts, int(shade), cv2.LINE_AA, 4)
    return as_uint8(out)


def restored(crop: GreyImage, limit: int = 2) -> Iterator[tuple[GreyImage, float]]:
    """`crop` with a synthetic finder at each place the missing third may be, and
    the finders' module size in px.

    Nothing when the crop does not show exactly two finders of one size (none, one,
    or all three visible: then a covered finder is not what stops zxing). The
    likeliest places come first: on the side of the two where the code's texture
    is, and there the corner that looks least like a code (a thumb is smooth).
    A place the alignment patterns could not refine is also tried nudged ¾
    module along either axis. A wrong place (the corner with no finder, or off
    the symbol) gives zxing a grid whose codewords fail their check: no read.
    """
    marks = find_marks(crop)
    if len(marks.finders) != 2:
        return
    a, b = marks.finders
    if not 0.6 < a.module / b.module < 1.67:
        return
    module = (a.module + b.module) / 2
    ink, paper = (float(x) for x in np.percentile(crop, (5, 90)))
    # The crop was cut around the visible texture, so a corner under a thumb is
    # often at or past its edge: pad it with paper so the painted finder and its
    # quiet zone fit.
    pad = math.ceil(9 * module)
    canvas = as_uint8(
        cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=paper)
    )
    edges = cv2.morphologyEx(canvas, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 20
    shift = np.array([pad, pad], np.float64)
    ranked = sorted(guesses(a, b), key=lambda g: _likelihood(edges, g, shift, module))
    for guess in ranked[:limit]:
        placed = refined(guess, marks.holes, module)
        # Unrefined (no alignment pattern found), the guess can be a module or two off.
        nudges = _NUDGES if placed[0] is guess else _NUDGES[:1]
        for better in placed:
            center, axes = better.centers[better.missing] + shift, better.axes
            for du, dv in nudges:
                nudged = center + du * axes[0] + dv * axes[1]
                yield paint_finder(canvas, nudged, axes, ink, paper), module


def _density(edges: npt.NDArray[np.bool_], center: Vec, radius: float) -> float:
    """Share of edge pixels in a square window around `center` (0 when outside)."""
    height, width = edges.shape
    x, y, r = int(center[0]), int(center[1]), max(int(radius), 2)
    window = edges[max(y - r, 0) : min(y + r, height), max(x - r, 0) : min(x + r, width)]
    return float(window.mean()) if window.size else 0.0


def _likelihood(
    edges: npt.NDArray[np.bool_], guess: Guess, shift: Vec, module: float
) -> tuple[float, float]:
    """Sort key, lower first: the symbol's body (the middle of the three centres)
    should be code texture, and the guessed corner itself smooth (covered)."""
    body = (guess.centers[1] + guess.centers[2]) / 2 + shift
    missing = guess.centers[guess.missing] + shift
    return (-round(_density(edges, body, 5 * module), 1), _density(edges, missing, 3.5 * module))
