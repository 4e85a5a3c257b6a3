"""How much the synthetic videos vary, and which store they show. Every range is sampled once per video (or per
shopper).

A preset is a store (what it looks like to its cameras: `Store`) and how much each video of it varies (noise,
blur, tint, tempo, distractors). `easy`, `standard` and `hard` show store A, the demo store `models/demo` was
trained in; `store-b` shows a second store with standard's amount of variation, so that what changes is the
store: where its cameras hang and how they are tilted, its shelf layout, surfaces, light and shoppers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from edge.scene import DEMO_SHELF_FRACTION

Range = tuple[float, float]


@dataclass(frozen=True)
class Store:
    """What a store looks like to its cameras. Each video is one camera of the store: the camera's ranges are
    sampled per video; the rest is the store's own."""

    name: str
    # The camera: the floor plan is drawn at `camera_scale` (below 1: a camera hung higher sees people and
    # products smaller), then seen through a tilted lens: `tilt` is how much larger things at the bottom of the
    # picture look than at its top (above 1: the shelf, at the top, is farther away), `roll_deg` turns the
    # picture about the lens's axis, and the picture shows `zoom` of the floor plan's height.
    camera_scale: Range = (1.0, 1.0)
    tilt: Range = (1.0, 1.0)
    roll_deg: Range = (0.0, 0.0)
    zoom: float = 1.0
    shelf_edge: float = DEMO_SHELF_FRACTION  # the shelf's front edge on the floor plan, a fraction of its height
    facings: int = 1  # units of one product side by side in a slot (products up to `wide_facing` pixels wide)
    wide_facing: int = 0
    rows: tuple[int, int] = (3, 2)  # units one behind the other: of products up to 34 pixels deep, of deeper ones
    slot_gap: float = 7.0  # between slots, pixels at 480 lines (before `camera_scale`)
    floor: Literal["tiles", "planks"] = "tiles"
    shelf: Literal["light", "dark"] = "light"
    lights: Literal["centre", "strips"] = "centre"  # a bright centre, or bands under fluorescent tubes
    light_colour: tuple[float, float, float] = (1.0, 1.0, 1.0)  # gain on blue, green, red
    shoppers: Literal["a", "b"] = "a"  # how people dress (`training.synth.script.random_look`)
    cart: Literal["wire", "trolley"] = "wire"

    @property
    def has_camera_model(self) -> bool:
        """False for a camera looking straight down at the floor plan (store A): nothing to project."""
        return self.tilt != (1.0, 1.0) or self.roll_deg != (0.0, 0.0) or self.zoom != 1.0


STORE_A = Store(name="a")
STORE_B = Store(
    name="b",
    camera_scale=(0.56, 0.64),
    tilt=(1.3, 1.5),
    roll_deg=(-4.0, 4.0),
    zoom=0.88,
    shelf_edge=0.42,
    facings=2,
    wide_facing=38,
    rows=(5, 4),
    slot_gap=3.0,
    floor="planks",
    shelf="dark",
    lights="strips",
    light_colour=(0.80, 0.95, 1.12),
    shoppers="b",
    cart="trolley",
)


@dataclass(frozen=True)
class Preset:
    name: str
    tempo: Range  # multiplier on action durations: below 1 is a fast shopper
    noise_sigma: Range  # sensor noise, grey levels
    blur_sigma: Range  # optics, pixels
    shake_px: float  # camera shake amplitude, pixels at 480 lines
    light_drift: float  # amplitude of the slow global brightness drift
    tint: float  # per-channel colour-temperature spread
    occluder_prob: float  # a ceiling lamp or sign hanging between camera and shelf
    passersby_per_min: float  # people crossing the aisle behind the shopper
    spinner_prob: float  # a rotating promotion display: motion that is not a shopper
    overlap_prob: float  # the next shopper walks in before the previous one has left
    empty_gap_prob: float  # nobody in view for a while between shoppers
    putback_prob: float  # an inspected product goes back to the shelf
    no_take_prob: float  # a hand goes into the shelf and comes back empty
    motion_blur_prob: float  # per frame, while the camera shakes hardest
    store: Store = field(default=STORE_A)


PRESETS: dict[str, Preset] = {
    "easy": Preset(
        name="easy",
        tempo=(0.9, 1.1),
        noise_sigma=(1.0, 2.0),
        blur_sigma=(0.0, 0.3),
        shake_px=0.0,
        light_drift=0.02,
        tint=0.02,
        occluder_prob=0.0,
        passersby_per_min=0.0,
        spinner_prob=0.0,
        overlap_prob=0.0,
        empty_gap_prob=0.3,
        putback_prob=0.25,
        no_take_prob=0.1,
        motion_blur_prob=0.0,
    ),
    "standard": Preset(
        name="standard",
        tempo=(0.7, 1.4),
        noise_sigma=(2.0, 5.0),
        blur_sigma=(0.0, 0.8),
        shake_px=1.5,
        light_drift=0.08,
        tint=0.06,
        occluder_prob=0.3,
        passersby_per_min=2.0,
        spinner_prob=0.2,
        overlap_prob=0.3,
        empty_gap_prob=0.5,
        putback_prob=0.3,
        no_take_prob=0.15,
        motion_blur_prob=0.0,
    ),
    "hard": Preset(
        name="hard",
        tempo=(0.5, 1.8),
        noise_sigma=(4.0, 10.0),
        blur_sigma=(0.3, 1.5),
        shake_px=4.0,
        light_drift=0.18,
        tint=0.12,
        occluder_prob=0.7,
        passersby_per_min=5.0,
        spinner_prob=0.6,
        overlap_prob=0.6,
        empty_gap_prob=0.6,
        putback_prob=0.35,
        no_take_prob=0.2,
        motion_blur_prob=0.3,
    ),
}
# Standard's amount of variation in another store: what store-b changes is the store alone.
PRESETS["store-b"] = replace(PRESETS["standard"], name="store-b", store=STORE_B)
