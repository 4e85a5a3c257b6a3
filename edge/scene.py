"""What moves in the picture, from one cheap foreground mask per frame (OpenCV's MOG2 at 160x120):

- the motion gate (`MotionGate`): nothing moves -> the models are skipped (an empty store costs almost nothing);
- shelf activity: motion inside each shelf zone (a recount waits until the zone is quiet again);
- shoppers: foreground blobs outside the shelf zones, followed by nearest-centroid tracking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.config import Zone

MASK_SIZE = (160, 120)
MIN_BLOB = 0.004  # of the frame: smaller blobs are noise, not people
WHOLE_PICTURE = 0.5  # of the aisle in the foreground at once: the picture changed (a camera starting), not people
ZONE_MARGIN = 3  # mask pixels (12 at 640x480)
# The synthetic store's shelf fills the top of the picture down to this fraction of its height (the generator
# draws it from this constant): the zone a box assumes when its config names none, and says so.
DEMO_SHELF_FRACTION = 0.36
# The two background models (OpenCV MOG2). The slow one remembers 600 frames (20 s at 30 fps), so that a shopper
# who stands still for seconds stays foreground; the shelf's fast one 90 frames (3 s), so that what moved in the
# last seconds stands out. A squared Mahalanobis distance of 25 (OpenCV's default is 16) keeps compression noise
# out of the masks.
PEOPLE_HISTORY, SHELF_HISTORY, VAR_THRESHOLD = 600, 90, 25


def default_zones(width: int, height: int) -> list[Zone]:
    """The demo store's layout (our synthetic shelf: the top DEMO_SHELF_FRACTION of the picture)."""
    edge = DEMO_SHELF_FRACTION * height
    return [Zone(name="shelf", polygon=[(0, 0), (width, 0), (width, edge), (0, edge)])]


@dataclass
class Foreground:
    mask: np.ndarray  # (120, 160) uint8, 255 where something moves or stands that is not background
    moving: float  # fraction of the frame
    zones: dict[str, float]  # fraction of each shelf zone
    zone_x: dict[str, float | None]  # x (frame pixels) of the motion's centre in each zone
    zone_columns: dict[str, np.ndarray]  # changed pixels per mask column, in each zone and its front margin
    fresh: np.ndarray  # (120, 160) bool: the fast-learning model's foreground, what moved in the last seconds


class MotionWatcher:
    def __init__(self, frame_size: tuple[int, int], zones: list[Zone]) -> None:
        self.width, self.height = frame_size
        self.subtractor = cv2.createBackgroundSubtractorMOG2(PEOPLE_HISTORY, VAR_THRESHOLD, detectShadows=False)
        sx, sy = MASK_SIZE[0] / self.width, MASK_SIZE[1] / self.height
        self.zone_masks: dict[str, np.ndarray] = {}
        self.zone_reach: dict[str, np.ndarray] = {}  # the whole zone: a hand at the shelf's edge counts here
        for zone in zones:
            m = np.zeros(MASK_SIZE[::-1], np.uint8)
            cv2.fillPoly(m, [np.round(np.array(zone.polygon) * (sx, sy)).astype(np.int32)], 255)
            # Motion is watched a few pixels inside the zone: hands resting at the shelf's edge do not hold
            # a recount back (a hand reaching in is still seen, and the action model flags it too).
            self.zone_masks[zone.name] = cv2.erode(m, np.ones((2 * ZONE_MARGIN + 1,) * 2, np.uint8)) > 0
            self.zone_reach[zone.name] = m > 0
        self.shelf = np.any(list(self.zone_masks.values()), axis=0) if zones else np.zeros(MASK_SIZE[::-1], bool)
        self.kernel = np.ones((3, 3), np.uint8)
        self.shelf_subtractor = cv2.createBackgroundSubtractorMOG2(SHELF_HISTORY, VAR_THRESHOLD, detectShadows=False)

    def update(self, frame_bgr: np.ndarray) -> Foreground:
        small = cv2.resize(frame_bgr, MASK_SIZE, interpolation=cv2.INTER_AREA)
        blurred = cv2.GaussianBlur(small, (3, 3), 0)
        mask = self.subtractor.apply(blurred)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.kernel)
        on = mask > 0
        # In the shelf zones a second, fast-learning background model: a product taken away leaves a "ghost"
        # that the slow model above would call motion for many seconds; this one forgets it in about three.
        fresh = self.shelf_subtractor.apply(blurred) > 0
        changed = cv2.morphologyEx(fresh.astype(np.uint8), cv2.MORPH_OPEN, self.kernel) > 0
        zones, zone_x, columns = {}, {}, {}
        for name, zm in self.zone_masks.items():
            hits = changed & zm
            zones[name] = float(hits.sum() / max(1, zm.sum()))
            xs = np.nonzero(hits)[1]
            zone_x[name] = float(xs.mean() * self.width / MASK_SIZE[0]) if len(xs) else None
            columns[name] = (changed & self.zone_reach[name]).sum(axis=0)
        return Foreground(mask, float(on.mean()), zones, zone_x, columns, changed)


# A picture counts as empty of people (for a snapshot to draw zones on) once the background model has learned for
# QUIET_WARMUP_S (MOG2 takes its first frames for background, whoever stands in them) and nothing has moved for
# QUIET_HOLD_S: not the one still frame between two steps of a shopper.
QUIET_WARMUP_S, QUIET_HOLD_S = 2.0, 0.5


class QuietWatch:
    """Whether nobody is in the picture: the foreground mask has been quiet (under MIN_BLOB of the frame) for
    `hold` frames in a row, after `warmup` frames of learning."""

    def __init__(self, warmup: int, hold: int) -> None:
        self.warmup, self.hold = warmup, hold
        self.seen = self.streak = 0

    def update(self, fg: Foreground) -> bool:
        self.seen += 1
        self.streak = self.streak + 1 if fg.moving < MIN_BLOB else 0
        return self.seen > self.warmup and self.streak >= self.hold


class MotionGate:
    """The models run while something moves in the picture and for `hold_frames` after: an empty aisle costs
    only the foreground mask."""

    def __init__(self, threshold: float, hold_frames: int) -> None:
        self.threshold, self.hold_frames = threshold, hold_frames
        self.last_motion = -(10**9)

    def update(self, index: int, fg: Foreground) -> bool:
        if fg.moving > self.threshold:
            self.last_motion = index
        return index - self.last_motion <= self.hold_frames


@dataclass
class Shopper:
    """One foreground blob of a shopper (a shopper, their arms and their cart are one blob or several)."""

    id: int  # the shopper's: the blobs of one shopper share it
    centre: tuple[float, float]  # frame pixels
    box: tuple[int, int, int, int]
    first_seen: float
    last_seen: float
    last_moved: float  # the last time the fast background model saw motion on it
    frames: int = 1
    at_border: bool = False  # last seen touching the picture's edge: when it vanishes there, it walked out


@dataclass
class ShopperTracker:
    """People in the aisle as foreground blobs, followed by nearest-centroid tracking.

    Four rules keep one shopper one basket: a blob that appears next to a shopper's blob is part of that
    shopper (an arm, a cart left a step behind, a body the slow background model has half learned while the
    shopper stood still); a blob on which nothing has moved for `still_s` is not a person but what a person
    left behind (the "ghost" of a cart that stood still, a bag on the floor), so it stops holding a shopper
    open and never starts a new one; a blob that vanishes at the picture's edge has walked out (after
    `exit_s`, not `gone_s`, if it was moving), so whoever walks in there next is someone new; and a shopper
    whose last blob vanished otherwise (unseen for `gone_s`) has not left, since people leave a camera's view
    across its edge, walking: they stood still until the background model learned them. They stay dormant for
    `dormant_s`, and a blob that appears where they vanished is them again, with their id; only then do they
    count as gone.
    """

    frame_size: tuple[int, int]
    aisle: np.ndarray  # (120, 160) bool: where shoppers can be (outside the shelf zones)
    gone_s: float = 2.0
    still_s: float = 10.0
    dormant_s: float = 15.0  # a shopper who vanished away from the picture's edge is kept this long from last seen
    max_jump: float = 0.25  # of the frame width, per update
    join: float = 0.08  # of the frame width: a new blob this close to a shopper's blob is part of that shopper
    exit_s: float = 0.3  # a blob gone this long after touching the picture's edge has left
    tracks: dict[int, Shopper] = field(default_factory=dict)  # by blob
    present: set[int] = field(default_factory=set)  # shoppers with a blob in the picture, or dormant
    dormant: dict[int, Shopper] = field(default_factory=dict)  # by shopper id: their last blob, vanished mid-picture
    next_blob: int = 1
    next_id: int = 1

    def update(self, mask: np.ndarray, ts: float, moving: np.ndarray | None = None) -> list[int]:
        """Follow the blobs (`moving`: the fast background model's foreground, same shape as `mask`); returns
        the shoppers that left (none of their blobs seen for `gone_s`)."""
        sx, sy = self.frame_size[0] / MASK_SIZE[0], self.frame_size[1] / MASK_SIZE[1]
        if self.aisle.any() and (mask > 0)[self.aisle].mean() > WHOLE_PICTURE:
            return self.expire(ts)  # the camera starting or the light changing, not people: nobody to follow in it
        # Dilating by ~30 px (at 640x480) joins a shopper, their arms and their cart into one blob.
        blobs = cv2.dilate(np.where(self.aisle, mask, 0).astype(np.uint8), np.ones((15, 15), np.uint8))
        n, labels, stats, centroids = cv2.connectedComponentsWithStats(blobs)
        found = [i for i in range(1, n) if stats[i][cv2.CC_STAT_AREA] >= MIN_BLOB * mask.size]
        unmatched = set(self.tracks)
        limit = self.max_jump * self.frame_size[0]
        for i in sorted(found, key=lambda i: -stats[i][cv2.CC_STAT_AREA]):
            centre = (centroids[i][0] * sx, centroids[i][1] * sy)
            stat = stats[i]
            box = (int(stat[0] * sx), int(stat[1] * sy), int((stat[0] + stat[2]) * sx), int((stat[1] + stat[3]) * sy))
            stirs = moving is None or bool((moving & (labels == i)).any())
            at_border = bool(
                stat[0] <= 0 or stat[1] <= 0 or stat[0] + stat[2] >= MASK_SIZE[0] or stat[1] + stat[3] >= MASK_SIZE[1]
            )
            best = min(unmatched, key=lambda k: _dist(self.tracks[k].centre, centre), default=None)
            if best is not None and _dist(self.tracks[best].centre, centre) <= limit:
                t = self.tracks[best]
                t.centre, t.box, t.last_seen, t.frames = centre, box, ts, t.frames + 1
                t.last_moved = ts if stirs else t.last_moved
                t.at_border = at_border
                unmatched.discard(best)
                continue
            if not stirs:
                continue  # a still blob nobody followed here is something left behind, not someone new
            reach = self.join * self.frame_size[0]
            near = [t for t in self.tracks.values() if _gap(t.box, box) <= reach]
            back = [t for t in self.dormant.values() if _gap(t.box, box) <= reach]
            frames = 1
            if near:
                shopper = max(near, key=lambda t: t.frames).id
            elif back:  # a dormant shopper moving again where they vanished
                found_again = min(back, key=lambda t: _dist(t.centre, centre))
                shopper, frames = found_again.id, found_again.frames
                del self.dormant[shopper]
            else:
                shopper, self.next_id = self.next_id, self.next_id + 1
            self.tracks[self.next_blob] = Shopper(shopper, centre, box, ts, ts, ts, frames, at_border=at_border)
            self.next_blob += 1
        return self.expire(ts)

    def expire(self, ts: float) -> list[int]:
        vanished: dict[int, Shopper] = {}  # by shopper id: a blob lost mid-picture, not walked out nor left behind
        for blob, t in list(self.tracks.items()):
            unseen = ts - t.last_seen
            # Walking out is moving: a still shopper whose blob touches the edge and fades into the background has not.
            walked_out = t.at_border and unseen > self.exit_s and t.last_seen - t.last_moved <= self.exit_s
            if unseen > self.gone_s or walked_out or ts - t.last_moved > self.still_s:
                del self.tracks[blob]
                if unseen > self.gone_s and not walked_out and t.last_seen - t.last_moved <= self.still_s:
                    vanished[t.id] = t
        live = {t.id for t in self.tracks.values()}
        for shopper, t in vanished.items():
            if shopper not in live:
                self.dormant[shopper] = t
        for shopper, t in list(self.dormant.items()):
            if shopper in live or ts - t.last_seen > self.dormant_s:
                del self.dormant[shopper]
        here = live | set(self.dormant)
        gone = sorted(self.present - here)
        self.present = here
        return gone

    def nearest(self, x: float | None, y: float | None = None) -> Shopper | None:
        """The shopper blob that reaches closest to where the shelf was touched, (x, y) in frame pixels (y: the
        shelf's front edge); with only y, the one standing closest to the shelf's front; the longest-seen one when
        the place is unknown. A shopper reaching into the shelf is nearer than someone walking past behind them. A
        shopper reaching moves, so a dormant one (standing still, learned into the background) is nearest only
        when nobody else is in view."""
        live = list(self.tracks.values()) or list(self.dormant.values())
        if not live:
            return None
        if x is None and y is not None:
            return min(live, key=lambda t: (max(0.0, t.box[1] - y), -t.frames))
        if x is None:
            return max(live, key=lambda t: t.frames)
        if y is None:
            return min(live, key=lambda t: abs(t.centre[0] - x))
        return min(live, key=lambda t: _dist((min(max(x, t.box[0]), t.box[2]), t.box[1]), (x, y)))


def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """The distance between two boxes (0 when they overlap)."""
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return float(np.hypot(dx, dy))


def _dist(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))
