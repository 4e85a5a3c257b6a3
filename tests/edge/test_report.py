"""From what the stages found to events (`edge.report.Reporter`): a shelf change becomes a pick or put-back of
the shopper nearest to it and their basket, an action segment is credited to the shopper at the shelf, and a
shopper who leaves closes their basket."""

import json

import numpy as np

from edge.classes import Action
from edge.emitter import Emitter
from edge.outbox import Outbox
from edge.report import NOBODY, Reporter
from edge.scene import MASK_SIZE, Foreground, ShopperTracker
from edge.segments import ActionSegment
from edge.shelf import ShelfChange
from edge.video import Frame

W, H = MASK_SIZE
AISLE = np.zeros((H, W), bool)
AISLE[44:, :] = True


def setup(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite", 100, 3600)
    jsonl = tmp_path / "events.jsonl"
    shoppers = ShopperTracker((640, 480), AISLE)
    return Reporter(Emitter("store-1", "box-a", outbox, jsonl), shoppers, fps=30.0), shoppers, jsonl


def events(jsonl) -> list[dict]:
    return [json.loads(line) for line in jsonl.read_text().splitlines()]


def shopper_at(shoppers: ShopperTracker, x1: int, x2: int, ts: float) -> None:
    m = np.zeros((H, W), np.uint8)
    m[60:100, x1:x2] = 255
    shoppers.update(m, ts, m > 0)


def foreground(zone_x: float | None, share: float = 0.0) -> Foreground:
    return Foreground(np.zeros((H, W), np.uint8), 0.0, {"shelf": share}, {"shelf": zone_x},
                      {"shelf": np.zeros(W, np.int64)}, np.zeros((H, W), bool))  # fmt: skip


def change(kind: str, sku: str, x: float) -> ShelfChange:
    return ShelfChange(kind, sku, 1, "shelf", x, 170.0, 42, 0.9)  # type: ignore[arg-type]


def test_a_pick_goes_to_the_nearest_shoppers_basket_and_a_putback_to_whoever_holds_that_sku(tmp_path):
    reporter, shoppers, jsonl = setup(tmp_path)
    shopper_at(shoppers, 10, 40, ts=0.0)  # shopper 1 on the left
    shopper_at(shoppers, 10, 40, ts=0.1)
    reporter.changes([change("pick", "cola", x=80)])
    shopper_at(shoppers, 110, 150, ts=0.2)  # shopper 2 appears on the right, nearer the put-back
    reporter.changes([change("putback", "cola", x=560)])
    found = [(e["kind"], e.get("sku"), e["shopper"], e.get("items")) for e in events(jsonl)]
    assert found == [("pick", "cola", 1, None), ("basket", None, 1, {"cola": 1}),
                     ("putback", "cola", 1, None), ("basket", None, 1, {})]  # fmt: skip
    assert (reporter.picks, reporter.putbacks) == (1, 1)


def test_a_change_with_nobody_in_view_is_nobodys(tmp_path):
    reporter, _, jsonl = setup(tmp_path)
    reporter.changes([change("pick", "chips", x=300)])
    assert events(jsonl)[0]["shopper"] == NOBODY


def test_an_action_is_credited_to_the_shopper_nearest_where_the_shelf_moved_and_carries_its_frames_times(tmp_path):
    reporter, shoppers, jsonl = setup(tmp_path)
    shopper_at(shoppers, 10, 40, ts=0.0)
    shopper_at(shoppers, 110, 150, ts=0.0)
    image = np.zeros((480, 640, 3), np.uint8)
    for i in range(10):
        reporter.saw(Frame(i, 1_700_000_000.0 + i / 30, image), foreground(520.0 if i > 5 else None))
    reporter.actions([ActionSegment(Action.NO_ACTION, 0, 3, 0.9), ActionSegment(Action.REACH_TO_SHELF, 3, 9, 0.8)])
    [e] = events(jsonl)  # no action is no event
    assert (e["action"], e["start"], e["end"], e["shopper"]) == ("reach_to_shelf", 3, 9, 2)
    assert e["start_ts"].startswith("2023-11-14T22:13:20.1") and e["end_ts"].startswith("2023-11-14T22:13:20.2")
    assert reporter.actions_seen == {"reach_to_shelf": 1}


def test_a_shopper_who_leaves_closes_their_basket(tmp_path):
    reporter, shoppers, jsonl = setup(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    reporter.changes([change("pick", "cola", x=300)])
    reporter.shoppers_left([1, 7])  # shopper 7 never touched anything: no basket
    last = events(jsonl)[-1]
    assert (last["kind"], last["shopper"], last["items"], last["reason"]) == ("basket", 1, {"cola": 1}, "left")
    assert reporter.open_baskets() == {1: {"cola": 1}}


def test_a_putback_of_an_item_nobody_was_seen_taking_is_nobodys_and_no_basket_goes_below_zero(tmp_path):
    reporter, shoppers, jsonl = setup(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    reporter.changes([change("putback", "sku01", x=300)])  # a hand puts back what it was never seen taking
    reporter.changes([change("pick", "sku03", x=300)])
    found = [(e["kind"], e.get("sku"), e.get("shopper"), e.get("items")) for e in events(jsonl)]
    assert found == [("putback", "sku01", None, None),  # reported for the shelf's sake, with no shopper
                     ("pick", "sku03", 1, None), ("basket", None, 1, {"sku03": 1})]  # fmt: skip
    assert reporter.putbacks == 1 and reporter.open_baskets() == {1: {"sku03": 1}}
    assert all(n >= 0 for e in events(jsonl) if e["kind"] == "basket" for n in e["items"].values())


def test_a_visit_goes_out_when_its_shopper_leaves_with_what_they_did_to_each_product(tmp_path):
    """From the first action to the last: zones, dwell, and per product reached, inspected, picked, put back and
    the outcome; events carry the frames' own times."""
    reporter, shoppers, jsonl = setup(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    image = np.zeros((480, 640, 3), np.uint8)
    t0 = 1_700_000_000.0
    for i in range(300):
        reporter.saw(Frame(i, t0 + i / 30, image), foreground(300.0))
    reporter.actions([ActionSegment(Action.INSPECT_SHELF, 0, 90, 0.9),
                      ActionSegment(Action.REACH_TO_SHELF, 90, 100, 0.9),
                      ActionSegment(Action.INSPECT_PRODUCT, 100, 160, 0.9)])  # fmt: skip
    reporter.changes([change("pick", "cola", x=300), change("pick", "chips", x=300)])
    reporter.changes([change("putback", "chips", x=300)])
    reporter.actions([ActionSegment(Action.RETRACT_FROM_SHELF, 200, 230, 0.9)])
    reporter.shoppers_left([1])
    assert not [e for e in events(jsonl) if e["kind"] == "visit"]
    reporter.changes([])  # the next frame's shelf update sends it (no shelf here whose recount it must wait for)
    visit = events(jsonl)[-1]
    assert visit["kind"] == "visit" and visit["shopper"] == 1 and visit["reason"] == "left"
    assert visit["start_ts"] == "2023-11-14T22:13:20Z" and visit["dwell_s"] == round(229 / 30, 2)
    assert (visit["actions"], visit["inspect_shelf_s"]) == (4, 3.0)
    assert visit["products_left_out"] == 0
    assert visit["products"] == [
        {"sku": "chips", "zone": "shelf", "reached": 0, "inspected": 0, "inspect_s": 0.0, "picked": 1, "put_back": 1,
         "outcome": "put_back"},
        {"sku": "cola", "zone": "shelf", "reached": 0, "inspected": 0, "inspect_s": 0.0, "picked": 1, "put_back": 0,
         "outcome": "kept"},
    ]  # fmt: skip
    assert events(jsonl)[2]["ts"] == events(jsonl)[2]["end_ts"]  # an action happened when it ended, on the clip


def test_actions_name_their_zone_and_the_product_in_the_hand_or_nearest_the_hand(tmp_path):
    from edge.config import Zone
    from edge.detector import Detection
    from edge.schedule import DetectionSchedule
    from edge.shelf import ShelfCounter, Unit

    outbox = Outbox(tmp_path / "outbox.sqlite", 100, 3600)
    shoppers = ShopperTracker((640, 480), AISLE)
    shelf = ShelfCounter([Zone(name="shelf", polygon=[(0, 0), (640, 0), (640, 170), (0, 170)])], 15, 0.01, 0.5,
                         (640, 480))  # fmt: skip
    shelf.states[0].units = [Unit("cola", (280, 100, 320, 160), 0.9), Unit("chips", (400, 100, 440, 160), 0.8)]
    in_hand = Detection((290, 160, 330, 200), 0, "cola", 0.8)  # at the shelf's front edge: in a hand
    schedule = DetectionSchedule(lambda image: [in_hand], 60, {})
    jsonl = tmp_path / "events.jsonl"
    reporter = Reporter(Emitter("store-1", "box-a", outbox, jsonl), shoppers, 30.0, 0.5, shelf, schedule)
    shopper_at(shoppers, 60, 90, ts=0.0)
    image = np.zeros((480, 640, 3), np.uint8)
    for i in range(60):
        frame = Frame(i, 1_700_000_000.0 + i / 30, image)
        reporter.saw(frame, foreground(300.0, 0.05) if i < 20 else foreground(None))
        if i >= 20 and i % 3 == 0:
            schedule.look(frame, True, Action.INSPECT_PRODUCT).detections()
    reporter.actions(
        [ActionSegment(Action.REACH_TO_SHELF, 0, 20, 0.9), ActionSegment(Action.INSPECT_PRODUCT, 20, 60, 0.9)]
    )
    reach, inspect = events(jsonl)
    assert (reach["zone"], reach["sku"]) == ("shelf", "cola")  # the slot nearest the hand's motion (x 300)
    assert reach["sku_confidence"] == 0.9  # a detection of 0.9 right where the hand was
    assert (inspect["zone"], inspect["sku"], inspect["sku_confidence"]) == ("shelf", "cola", 0.8)
    reporter.finish()  # the clip ends with the shopper still there
    visit = events(jsonl)[-1]
    assert (visit["kind"], visit["reason"], visit["dwell_s"]) == ("visit", "end", round(59 / 30, 2))
    # Seen in the hand, but the shelf never missed it: taken and put straight back, which only the visit can tell.
    assert visit["products"] == [{"sku": "cola", "zone": "shelf", "reached": 1, "inspected": 1, "inspect_s": 1.33,
                                  "picked": 1, "put_back": 1, "outcome": "put_back"}]  # fmt: skip


def test_a_visit_with_many_products_keeps_those_picked_first_and_stays_under_1_kb(tmp_path):
    reporter, shoppers, jsonl = setup(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    long = "a-product-with-a-long-stock-keeping-unit-name-{:02d}"
    reporter.changes([change("pick", long.format(i), x=300) for i in range(12)])
    reporter.finish()
    payload = jsonl.read_text().splitlines()[-1]
    visit = json.loads(payload)
    assert visit["kind"] == "visit" and len(payload) < 1024
    assert len(visit["products"]) + visit["products_left_out"] == 12 and visit["products_left_out"] > 0
    assert all(p["outcome"] == "kept" for p in visit["products"])
