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
