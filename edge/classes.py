"""The action classes: the contract between training, export, the edge agent and central.

Index 0 is "no action" (MERL Shopping leaves such frames unlabelled); indices 1-5 follow the order of the
five MERL Shopping classes, so MERL class k is our class k.
"""

from enum import IntEnum


class Action(IntEnum):
    NO_ACTION = 0
    REACH_TO_SHELF = 1
    RETRACT_FROM_SHELF = 2
    HAND_IN_SHELF = 3
    INSPECT_PRODUCT = 4
    INSPECT_SHELF = 5


ACTION_CLASSES: tuple[str, ...] = tuple(a.name.lower() for a in Action)

# The names MERL Shopping's documentation uses, for its classes 1-5.
MERL_CLASS_NAMES: tuple[str, ...] = (
    "Reach To Shelf",
    "Retract From Shelf",
    "Hand In Shelf",
    "Inspect Product",
    "Inspect Shelf",
)
