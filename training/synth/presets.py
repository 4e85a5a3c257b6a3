"""How much the synthetic videos vary. Every range is sampled once per video (or per shopper)."""

from __future__ import annotations

from dataclasses import dataclass

Range = tuple[float, float]


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
