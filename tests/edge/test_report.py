"""From what the stages found to events (`edge.report.Reporter`): a shelf change becomes a pick or put-back of
the shopper nearest to it and their basket, an action segment is credited to the shopper at the shelf, and a
shopper who leaves closes their basket."""

import json

import numpy as np

from edge.classes import Action
from edge.emitter import Emitter
from edge.familiarity import Guard, Reading
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
        reporter.saw(Frame(i, 1_700_000_000.0 + i / 30, image), foreground(520.0, 0.01) if i > 5 else foreground(None))
    reporter.actions([ActionSegment(Action.NO_ACTION, 0, 3, 0.9), ActionSegment(Action.REACH_TO_SHELF, 3, 9, 0.8)])
    [e] = events(jsonl)  # no action is no event
    assert (e["action"], e["start"], e["end"], e["shopper"]) == ("reach_to_shelf", 3, 9, 2)
    assert e["start_ts"].startswith("2023-11-14T22:13:20.1") and e["end_ts"].startswith("2023-11-14T22:13:20.2")
    assert reporter.actions_seen == {"reach_to_shelf": 1}


def test_an_action_goes_to_the_shopper_where_the_shelf_moved_during_it_or_else_to_the_one_closest_to_the_shelf(
    tmp_path,
):
    """Not to where the shelf moved last: a reach into the shelf on the right, by the shopper further back there, then
    the shopper on the left, standing at the shelf, looks at it (no shelf motion); a look at the shelf is the nearest
    shopper's even while something moves on the shelf elsewhere."""
    from edge.config import Zone
    from edge.shelf import ShelfCounter

    outbox = Outbox(tmp_path / "outbox.sqlite", 100, 3600)
    shoppers = ShopperTracker((640, 480), AISLE)
    shelf = ShelfCounter([Zone(name="shelf", polygon=[(0, 0), (640, 0), (640, 170), (0, 170)])], 15, 0.01, 0.5,
                         (640, 480))  # fmt: skip
    jsonl = tmp_path / "events.jsonl"
    reporter = Reporter(Emitter("store-1", "box-a", outbox, jsonl), shoppers, 30.0, 0.5, shelf)
    at_shelf, passing = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
    at_shelf[45:80, 10:40] = 255  # just below the shelf's front edge (y 170 in the frame, 42 in the mask)
    passing[80:115, 110:150] = 255  # further back in the aisle
    image = np.zeros((480, 640, 3), np.uint8)
    for i in range(60):
        both = at_shelf | passing
        shoppers.update(both, i / 30, both > 0)
        reporter.saw(Frame(i, 1_700_000_000.0 + i / 30, image), foreground(520.0, 0.05) if i < 10 else foreground(None))
    reporter.actions(
        [
            ActionSegment(Action.REACH_TO_SHELF, 0, 10, 0.9),
            ActionSegment(Action.INSPECT_SHELF, 20, 60, 0.9),
            ActionSegment(Action.INSPECT_SHELF, 0, 10, 0.9),
        ]
    )
    right, left = (t.id for t in sorted(shoppers.tracks.values(), key=lambda t: -t.centre[0]))
    reach, look, look_while_moving = events(jsonl)
    assert (reach["shopper"], look["shopper"], look_while_moving["shopper"]) == (right, left, left)


def test_a_pick_is_the_shopper_whose_hand_went_into_the_shelf_not_whoever_stands_nearest_when_it_settles(tmp_path):
    """By the time the shelf settles, a passer-by can stand nearer the emptied place than the shopper who took from
    it; the pick (and the visit it makes) is the shopper credited with the hands that went in during the disturbance.
    A change whose hands nobody was credited with goes to the nearest shopper, as before."""
    reporter, shoppers, jsonl = setup(tmp_path)
    shopper_at(shoppers, 10, 40, ts=0.0)  # the shopper, on the left
    shopper_at(shoppers, 110, 150, ts=0.0)  # a passer-by, on the right
    left, right = (t.id for t in sorted(shoppers.tracks.values(), key=lambda t: t.centre[0]))
    image = np.zeros((480, 640, 3), np.uint8)
    for i in range(60):  # the shelf moves on the left while the hand is in it
        reporter.saw(Frame(i, 1_700_000_000.0 + i / 30, image), foreground(80.0, 0.05) if i < 30 else foreground(None))
    reporter.actions([ActionSegment(Action.REACH_TO_SHELF, 0, 10, 0.9),
                      ActionSegment(Action.HAND_IN_SHELF, 10, 30, 0.9)])  # fmt: skip
    # The unit's place is nearer the passer-by (x 560) when the recount settles it.
    reporter.changes([ShelfChange("pick", "cola", 1, "shelf", 560.0, 170.0, 50, 0.9, since=0, hands=((0, 30),))])
    reporter.changes([ShelfChange("pick", "tea", 1, "shelf", 560.0, 170.0, 55, 0.9, since=40, hands=((40, 50),))])
    reporter.finish()
    picks = {e["sku"]: e["shopper"] for e in events(jsonl) if e["kind"] == "pick"}
    assert picks == {"cola": left, "tea": right}
    visits = {e["shopper"]: [p["sku"] for p in e["products"] if p["picked"]] for e in events(jsonl)
              if e["kind"] == "visit"}  # fmt: skip
    assert visits[left] == ["cola"]


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
    # Seen in a hand, but the shelf never missed it: looked at. Whether it was taken and put back is the shelf's to
    # say (a unit away from its place while the hand was out, edge.shelf); a sighting in a hand names the wrong
    # product too often to make a pick and a put-back of it.
    assert visit["products"] == [{"sku": "cola", "zone": "shelf", "reached": 1, "inspected": 1, "inspect_s": 1.33,
                                  "picked": 0, "put_back": 0, "outcome": "looked"}]  # fmt: skip


def test_a_visit_over_1_kb_goes_out_in_parts_each_under_1_kb_and_leaves_no_product_out(tmp_path):
    reporter, shoppers, jsonl = setup(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    long = "a-product-with-a-long-stock-keeping-unit-name-{:02d}"
    reporter.actions([ActionSegment(Action.REACH_TO_SHELF, 0, 10, 0.9)])  # a visit needs a reported shelf action
    reporter.changes([change("pick", long.format(i), x=300) for i in range(12)])
    reporter.changes([change("putback", long.format(3), x=300)])
    reporter.finish()
    payloads = [line for line in jsonl.read_text().splitlines() if json.loads(line)["kind"] == "visit"]
    parts = [json.loads(p) for p in payloads]
    assert len(parts) > 1 and all(len(p) <= 1024 for p in payloads)
    assert [(p["part"], p["parts"]) for p in parts] == [(n, len(parts)) for n in range(1, len(parts) + 1)]
    assert all(p["products_left_out"] == 0 for p in parts)
    products = [product for p in parts for product in p["products"]]
    assert sorted(p["sku"] for p in products) == [long.format(i) for i in range(12)]  # each once, none left out
    assert products[0]["sku"] == long.format(3) and products[0]["outcome"] == "put_back"  # picked and put back first
    # Every part is the same visit: its shopper, times and counts repeated, only its products differ.
    same = {k: v for k, v in parts[0].items() if k not in ("event_id", "seq", "products", "part")}
    assert all({k: v for k, v in p.items() if k not in ("event_id", "seq", "products", "part")} == same for p in parts)


def test_a_visits_counts_agree_with_the_boxs_pick_and_putback_events(tmp_path):
    """Per product, the units a visit says were picked and put back are those of the box's own events: the shelf's
    pick and its put-back of a unit taken and put back count in both; a product only seen in a hand, which the
    shelf never missed, counts as neither."""
    from edge.config import Zone
    from edge.detector import Detection
    from edge.schedule import DetectionSchedule
    from edge.shelf import ShelfCounter, Unit

    outbox = Outbox(tmp_path / "outbox.sqlite", 100, 3600)
    shoppers = ShopperTracker((640, 480), AISLE)
    shelf = ShelfCounter([Zone(name="shelf", polygon=[(0, 0), (640, 0), (640, 170), (0, 170)])], 15, 0.01, 0.5,
                         (640, 480))  # fmt: skip
    shelf.states[0].units = [Unit("cola", (280, 100, 320, 160), 0.9), Unit("chips", (400, 100, 440, 160), 0.8)]
    seen = [Detection((290, 160, 330, 200), 0, "cola", 0.8)]
    schedule = DetectionSchedule(lambda image: list(seen), 60, {})
    jsonl = tmp_path / "events.jsonl"
    reporter = Reporter(Emitter("store-1", "box-a", outbox, jsonl), shoppers, 30.0, 0.5, shelf, schedule)
    shopper_at(shoppers, 60, 90, ts=0.0)
    image = np.zeros((480, 640, 3), np.uint8)
    for i in range(120):
        frame = Frame(i, 1_700_000_000.0 + i / 30, image)
        reporter.saw(frame, foreground(300.0, 0.05) if i < 20 else foreground(None))
        if i == 60:
            seen[:] = [Detection((410, 160, 450, 200), 0, "soap", 0.6)]  # soap in a hand: no slot of it was reached
        if i >= 20 and i % 3 == 0:
            schedule.look(frame, True, Action.INSPECT_PRODUCT).detections()
    reporter.actions([ActionSegment(Action.REACH_TO_SHELF, 0, 20, 0.9),
                      ActionSegment(Action.INSPECT_PRODUCT, 20, 60, 0.9),
                      ActionSegment(Action.INSPECT_PRODUCT, 60, 120, 0.9)])  # fmt: skip
    reporter.changes([change("pick", "chips", x=420)])
    reporter.changes([change("pick", "cola", x=300), change("putback", "cola", x=300)])  # taken and put back
    reporter.finish()
    found = events(jsonl)
    [visit] = [e for e in found if e["kind"] == "visit"]
    per_visit = {p["sku"]: (p["picked"], p["put_back"]) for p in visit["products"] if p["picked"] or p["put_back"]}
    per_events: dict[str, list[int]] = {}
    for e in found:
        if e["kind"] in ("pick", "putback"):
            per_events.setdefault(e["sku"], [0, 0])[e["kind"] == "putback"] += e["quantity"]
    assert per_visit == {sku: tuple(n) for sku, n in per_events.items()} == {"cola": (1, 1), "chips": (1, 0)}
    outcomes = {p["sku"]: p["outcome"] for p in visit["products"]}
    assert outcomes == {"cola": "put_back", "chips": "kept", "soap": "looked"}
    assert (reporter.picks, reporter.putbacks) == (2, 1)
    assert reporter.open_baskets() == {1: {"chips": 1}}  # taken and put back: the basket never changed


def guarded(tmp_path, policy: str = "flag", **kw):
    outbox = Outbox(tmp_path / "outbox.sqlite", 100, 3600)
    jsonl = tmp_path / "events.jsonl"
    shoppers = ShopperTracker((640, 480), AISLE)
    reporter = Reporter(Emitter("store-1", "box-a", outbox, jsonl), shoppers, fps=30.0, delay=2,
                        guard=Guard(threshold=20.0, window=30), policy=policy, **kw)  # fmt: skip
    return reporter, shoppers, jsonl


def scored(reporter: Reporter, frames: range, familiar: bool) -> None:
    """Frames the guard scores well under its threshold (20), or well over it."""
    image = np.zeros((480, 640, 3), np.uint8)
    score = 10.0 if familiar else 30.0
    for i in frames:
        reporter.saw(Frame(i, 1_700_000_000.0 + i / 30, image), foreground(300.0))
        reporter.scored(i, Reading(score, score, familiar))


def test_what_comes_from_unfamiliar_footage_is_flagged_and_changes_no_basket_and_makes_no_visit(tmp_path):
    reporter, shoppers, jsonl = guarded(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    scored(reporter, range(0, 40), familiar=True)
    scored(reporter, range(40, 100), familiar=False)
    # An action's evidence runs the model's delay (2) past its end: frames 10-32 are familiar; of 30-62, 22 are not.
    reporter.actions(
        [ActionSegment(Action.REACH_TO_SHELF, 10, 30, 0.9), ActionSegment(Action.HAND_IN_SHELF, 30, 60, 0.9)]
    )
    picked = ShelfChange("pick", "cola", 1, "shelf", 300.0, 170.0, 60, 0.9, since=50)
    reporter.changes([picked])
    reporter.finish()
    found = [(e["kind"], e.get("action") or e.get("sku"), e.get("familiar")) for e in events(jsonl)]
    assert found == [("action", "reach_to_shelf", True), ("action", "hand_in_shelf", False),
                     ("pick", "cola", False), ("visit", None, True)]  # fmt: skip
    visit = events(jsonl)[-1]
    assert visit["actions"] == 1 and visit["products"] == []  # only the familiar reach; the unsure pick is not in it
    assert reporter.unsure == {"pick": 1} and reporter.picks == 0 and reporter.open_baskets() == {}


def test_a_pick_is_as_familiar_as_the_hands_visits_into_the_shelf(tmp_path):
    """The action model vouches for a hand going into the shelf; the look at the product between two visits and the
    detector's recount at rest are not its to vouch for, so a long unfamiliar look does not make the pick unsure."""
    reporter, shoppers, jsonl = guarded(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    scored(reporter, range(0, 40), familiar=True)
    scored(reporter, range(40, 80), familiar=False)  # the product looked at, up close
    scored(reporter, range(80, 200), familiar=True)
    # Hands recorded at the frames their labels came out; with the delay (2) the label at 82 was made from 80-82.
    reporter.changes([ShelfChange("pick", "cola", 1, "shelf", 300.0, 170.0, 120, 0.9, since=10,
                                  hands=((20, 35), (82, 95)))])  # fmt: skip
    # A hand that went in while the footage was unlike the training: most of the visits' frames were unfamiliar.
    reporter.changes([ShelfChange("pick", "tea", 1, "shelf", 300.0, 170.0, 150, 0.9, since=10,
                                  hands=((20, 35), (45, 75)))])  # fmt: skip
    assert [(e["kind"], e.get("sku"), e.get("familiar")) for e in events(jsonl)] == [
        ("pick", "cola", True), ("basket", None, None), ("pick", "tea", False)]  # fmt: skip


def test_a_pick_without_its_hands_is_judged_over_its_whole_disturbance(tmp_path):
    reporter, shoppers, jsonl = guarded(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    scored(reporter, range(0, 40), familiar=False)
    scored(reporter, range(40, 100), familiar=True)
    reporter.changes([ShelfChange("pick", "cola", 1, "shelf", 300.0, 170.0, 60, 0.9, since=5)])  # 35 of 56 unfamiliar
    reporter.changes([ShelfChange("pick", "tea", 1, "shelf", 300.0, 170.0, 90, 0.9, since=60)])
    assert [(e["kind"], e.get("sku"), e.get("familiar")) for e in events(jsonl)] == [
        ("pick", "cola", False), ("pick", "tea", True), ("basket", None, None)]  # fmt: skip
    assert reporter.open_baskets() == {1: {"tea": 1}}


def test_a_long_action_is_judged_as_one_window_not_by_its_worst_second(tmp_path):
    """The guard's threshold lets one window of training-like video in a hundred through; a long action holds many
    windows, and asking each of them to stay under it would flag long actions on that very video. So the action's
    frames are judged together: a second over the threshold inside a long familiar action leaves it familiar, and a
    short action is judged by the window that ends with it, as the guard judges a frame."""
    reporter, shoppers, jsonl = guarded(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    scored(reporter, range(0, 60), familiar=True)
    scored(reporter, range(60, 90), familiar=False)  # one second over the threshold
    scored(reporter, range(90, 300), familiar=True)
    reporter.actions([ActionSegment(Action.INSPECT_SHELF, 0, 150, 0.9),  # 30 of 152 frames over: a mean of 13.9
                      ActionSegment(Action.REACH_TO_SHELF, 70, 85, 0.9),  # the 30 frames up to 86: 27 over
                      ActionSegment(Action.HAND_IN_SHELF, 200, 210, 0.9)])  # fmt: skip
    assert [(e.get("action"), e.get("familiar")) for e in events(jsonl)] == [
        ("inspect_shelf", True), ("reach_to_shelf", False), ("hand_in_shelf", True)]  # fmt: skip
    assert reporter.familiar_over([(0, 150)]) is True and reporter.familiar_over([(60, 90)]) is False


def test_a_short_stretch_is_judged_with_the_frames_just_before_it_back_to_the_last_gap(tmp_path):
    """Shorter than the guard's window (30 frames), an action is judged with the frames scored just before it, as the
    guard judges its last frame; not across a gap in scoring (the motion gate closed), where the guard's window
    starts afresh; and a pick's short hand visits leave out what was looked at between them."""
    reporter, shoppers, _ = guarded(tmp_path)
    shopper_at(shoppers, 60, 90, ts=0.0)
    scored(reporter, range(0, 60), familiar=True)
    scored(reporter, range(60, 100), familiar=False)
    scored(reporter, range(100, 200), familiar=True)
    scored(reporter, range(230, 300), familiar=False)
    scored(reporter, range(301, 320), familiar=True)  # frame 300 not scored: a gap
    # Frames 100-111 under; with the 18 before them (82-99, over) the window's mean is 22: unfamiliar.
    assert reporter.familiar_over([(100, 112)]) is False
    assert reporter.familiar_over([(301, 312)]) is True  # nothing before the gap counts
    # Two short visits around a long unfamiliar look (60-99): 15 frames, judged with the 15 before the first (35-49),
    # not with the end of the look (85-99, which would make the mean 20).
    assert reporter.familiar_over([(50, 60), (100, 105)]) is True
    assert reporter.familiar_over([(250, 290)]) is False


def test_the_drop_policy_sends_nothing_from_unfamiliar_footage(tmp_path):
    reporter, shoppers, jsonl = guarded(tmp_path, policy="drop")
    shopper_at(shoppers, 60, 90, ts=0.0)
    scored(reporter, range(0, 100), familiar=False)
    reporter.actions([ActionSegment(Action.REACH_TO_SHELF, 10, 30, 0.9)])
    reporter.changes([ShelfChange("pick", "cola", 1, "shelf", 300.0, 170.0, 60, 0.9, since=50)])
    reporter.finish()
    assert events(jsonl) == []  # no action, no pick, no basket, and no visit (no familiar shelf action)
    assert reporter.withheld == {"action_unfamiliar": 1, "pick_unfamiliar": 1}


def test_a_visit_needs_a_reported_shelf_action(tmp_path):
    reporter, shoppers, jsonl = setup(tmp_path)  # no guard: familiarity unknown, and the rule holds all the same
    reporter.min_confidence = 0.75
    shopper_at(shoppers, 60, 90, ts=0.0)
    reporter.actions([ActionSegment(Action.REACH_TO_SHELF, 10, 30, 0.6)])  # under the floor: not reported
    reporter.changes([change("pick", "cola", x=300)])
    reporter.finish()
    assert [e["kind"] for e in events(jsonl)] == ["pick", "basket"]  # the pick counts; a visit nobody saw does not
    assert reporter.withheld == {"visit_without_action": 1}


def test_a_putback_in_a_files_last_second_is_not_reported_like_the_end_of_file_count(tmp_path):
    reporter, shoppers, jsonl = guarded(tmp_path, file_frames=600)
    reporter.guard = None
    shopper_at(shoppers, 60, 90, ts=0.0)
    reporter.changes([ShelfChange("pick", "cola", 1, "shelf", 300.0, 170.0, 100, 0.9)])
    reporter.changes([ShelfChange("putback", "cola", 1, "shelf", 300.0, 170.0, 569, 0.9)])  # 31 frames before the end
    reporter.changes([ShelfChange("putback", "tea", 1, "shelf", 300.0, 170.0, 586, 0.9)])  # 14 frames before the end
    assert [(e["kind"], e.get("sku")) for e in events(jsonl) if e["kind"] != "basket"] == [
        ("pick", "cola"), ("putback", "cola")]  # fmt: skip
    assert reporter.withheld == {"putback_end_of_file": 1}


def test_a_unit_taken_and_put_back_in_a_files_last_second_is_reported_whole(tmp_path):
    """The shelf at rest, recounted in the file's last second, saw a unit back that was away while the hand was out
    (edge.shelf): the pick and the put-back are one fact, both reported, never the pick alone."""
    reporter, shoppers, jsonl = guarded(tmp_path, file_frames=600)
    reporter.guard = None
    shopper_at(shoppers, 60, 90, ts=0.0)
    reporter.changes([ShelfChange("pick", "cola", 1, "shelf", 300.0, 170.0, 590, 0.9),
                      ShelfChange("putback", "cola", 1, "shelf", 300.0, 170.0, 590, 0.9)])  # fmt: skip
    assert [(e["kind"], e.get("sku")) for e in events(jsonl) if e["kind"] != "basket"] == [
        ("pick", "cola"), ("putback", "cola")]  # fmt: skip
    assert reporter.withheld == {}


def test_a_putback_nobody_was_seen_taking_is_not_reported_under_the_detectors_floor(tmp_path):
    reporter, _, jsonl = guarded(tmp_path, detector_floor=0.4)
    reporter.guard = None
    reporter.changes([ShelfChange("putback", "cola", 1, "shelf", 300.0, 170.0, 100, 0.35)])  # nobody's, unsure
    reporter.changes([ShelfChange("putback", "tea", 1, "shelf", 300.0, 170.0, 100, 0.45)])  # nobody's, sure enough
    assert [(e["kind"], e["sku"], e.get("shopper")) for e in events(jsonl)] == [("putback", "tea", None)]
    assert reporter.withheld == {"putback_under_floor": 1}
