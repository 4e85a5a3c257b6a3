"""The agent on real footage nobody here made (`../shared/real/clips`, see its README): people walking past a
raised outdoor camera, a hand holding a box, a hand holding a cup. None of them shows a shelf, so the box must
invent nothing: no pick, no put-back, no negative basket, and hardly any shelf action (at most two a minute of
people walking past); and with the demo bundle's familiarity guard, nothing it does report from them passes as a
sure fact (issue 25). These clips are for checking only; nothing is trained, fitted or calibrated on them."""

import json
from pathlib import Path

import pytest

from tests.edge.test_agent_delivery import DEMO_BUNDLE

CLIPS = Path(__file__).resolve().parents[2].parent / "shared" / "real" / "clips"


def run(shelfwatch, tmp_path: Path, clip: str) -> tuple[list[dict], str]:
    assert (CLIPS / clip).is_file(), f"the real clips are missing: {CLIPS} (CI has them beside the project)"
    jsonl = tmp_path / "events.jsonl"
    result = shelfwatch("edge", "run", "--bundle", DEMO_BUNDLE, "--source", CLIPS / clip, "--events-jsonl", jsonl,
                        "--outbox", tmp_path / "outbox.sqlite")  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return [json.loads(line) for line in jsonl.read_text().splitlines()], result.stderr


@pytest.mark.parametrize("clip", ["vtest.avi", "box.mp4", "cup.mp4"])
def test_no_shelf_in_view_no_picks_no_putbacks_no_negative_basket(shelfwatch, tmp_path, clip):
    events, stderr = run(shelfwatch, tmp_path, clip)
    assert [e for e in events if e["kind"] in ("pick", "putback")] == []
    assert all(n >= 0 for e in events if e["kind"] == "basket" for n in e["items"].values())
    # With --bundle and no box config the box says which shelf zone it assumed.
    assert "no shelf zones configured: assuming the demo store's layout" in stderr


def test_people_walking_past_make_at_most_two_shelf_actions_a_minute(shelfwatch, tmp_path):
    events, _ = run(shelfwatch, tmp_path, "vtest.avi")
    frames = max(e["frames"] for e in events if e["kind"] == "status")
    minutes = frames / 10 / 60  # 795 frames at 10 fps
    actions = [e for e in events if e["kind"] == "action"]
    assert frames == 795 and len(actions) <= 2 * minutes, actions


@pytest.mark.parametrize("clip", ["vtest.avi", "box.mp4", "cup.mp4"])
def test_nothing_from_real_footage_unlike_the_training_passes_as_a_sure_fact(shelfwatch, tmp_path, clip):
    events, _ = run(shelfwatch, tmp_path, clip)
    facts = [e for e in events if e["kind"] in ("action", "pick", "putback", "visit")]
    assert all(e.get("familiar") is False for e in facts), facts  # never true, never missing
    assert not [e for e in facts if e["kind"] == "visit"]  # a visit needs a familiar shelf action
    statuses = [e for e in events if e["kind"] == "status" and "unfamiliar_share" in e]
    assert statuses and statuses[-1]["unfamiliar_share"] >= 0.5
