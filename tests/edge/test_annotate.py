"""The annotated video's two writers: OpenCV's mp4v (what a box has) and H.264 through PyAV (what browsers
play; the web pages use it). The box must not need PyAV: the agent imports it only when H.264 is asked for."""

import subprocess
import sys

import av
import numpy as np

from edge.annotate import Annotator
from edge.config import Zone


def test_h264_writer_makes_a_browser_playable_mp4(tmp_path):
    path = tmp_path / "a.mp4"
    zones = [Zone(name="shelf", polygon=[(0, 0), (100, 0), (100, 40)])]
    annotator = Annotator(path, 30.0, (161, 121), zones, {}, codec="h264")  # odd sizes lose a column and a row
    for i in range(45):
        annotator.write(np.full((121, 161, 3), i * 5, np.uint8), [], [], {}, (1, 0.9), True, 30.0)
    annotator.close()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 160, 120)
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 45
    head = path.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat")  # faststart: the index comes first


def test_the_agent_does_not_import_pyav_unless_asked():
    code = "import sys, edge.agent, edge.annotate; print('av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_frames_unlike_the_models_training_are_framed_and_say_so(tmp_path):
    import cv2

    from edge.annotate import MAGENTA

    path = tmp_path / "a.mp4"
    annotator = Annotator(path, 30.0, (320, 240), [], {})
    for familiar in (True, None, False):  # familiar, not judged (or no guard), unfamiliar
        annotator.write(np.full((240, 320, 3), 128, np.uint8), [], [], {}, None, True, 30.0, familiar)
    annotator.close()
    cap = cv2.VideoCapture(str(path))
    frames = [cap.read()[1] for _ in range(3)]
    border = [f[120, 2].astype(int) for f in frames]  # a pixel of the left edge, mid-height
    assert [int(np.abs(b - MAGENTA).max()) < 40 for b in border] == [False, False, True]


def test_only_what_matters_is_labelled_and_no_two_labels_overlap(tmp_path):
    """Issue 26: products on the shelf are drawn quietly (no label); the slot a hand is touching, the product in a
    hand, each shopper's basket and a pick as it happens are named; labels asked for at one place do not overlap."""
    from edge.annotate import CYAN, GREEN, GREY, Happening
    from edge.detector import Detection
    from edge.scene import Shopper

    zones = [Zone(name="shelf", polygon=[(0, 0), (640, 0), (640, 170), (0, 170)])]
    names = {f"sku{i:02d}": f"Orange juice carton {i}" for i in range(12)}
    annotator = Annotator(tmp_path / "a.mp4", 30.0, (640, 480), zones, names)
    shelf = [Detection((40 * i, 100, 40 * i + 38, 160), i, f"sku{i:02d}", 0.9) for i in range(12)]  # side by side
    hand = [Detection((300, 180, 340, 220), 3, "sku03", 0.8), Detection((310, 185, 350, 225), 4, "sku04", 0.6)]
    shoppers = [Shopper(7, (320, 300), (260, 200, 380, 400), 0.0, 1.0, 1.0, frames=30)]
    labels, boxes = annotator.plan(shelf + hand, shoppers, {7: {"sku05": 1}}, touched_x=205.0,
                                   happenings=[Happening(10.0, "pick", "sku05", 7), Happening(1.0, "pick", "sku01", 7)],
                                   now=10.5)  # fmt: skip
    texts = [label.text for label in labels]
    assert texts[0] == "PICKED Orange juice carton 5 · shopper 7"  # the one of 1.0 s is long gone
    assert "touching Orange juice carton 5" in texts  # the slot nearest the hand (x 205: sku05 at 200..238)
    assert "in hand: Orange juice carton 3" in texts and "shopper 7: 1x Orange juice carton 5" in texts
    assert not any("carton 1" in t or "carton 11" in t for t in texts)  # shelf products: no label
    colours = {d.sku: c for d, c in boxes}
    assert (colours["sku05"], colours["sku00"], colours["sku03"]) == (CYAN, GREY, GREEN)
    rects = [label.rect for label in labels]
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
