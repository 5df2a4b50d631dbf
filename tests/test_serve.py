"""The browser demo and its HTTP API (inpaintssl.app.serve, inpaintssl.app.demo).

API tests talk to a real uvicorn server on a free localhost port; the end-to-end test drives Debian's
Chromium with Playwright (skipped, with the reason, when either is missing). Set
INPAINTSSL_SCREENSHOT_DIR to also keep a copy of the browser test's screenshots there.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

pytest.importorskip("starlette", reason="the web demo needs the [demo] extra (starlette)")
pytest.importorskip("uvicorn", reason="the web demo needs the [demo] extra (uvicorn)")
pytest.importorskip("python_multipart", reason="the web demo needs the [demo] extra (python-multipart)")
httpx = pytest.importorskip("httpx", reason="the API tests use httpx as the HTTP client")

from conftest import COCO_VAL  # noqa: E402
from inpaintssl.data import images  # noqa: E402
from inpaintssl.cli import cli  # noqa: E402
from inpaintssl.data.folder import embedded_photos  # noqa: E402
from inpaintssl.app.demo import ensure_demo_run, prepare_demo_photos  # noqa: E402
from inpaintssl.data.images import load_rgb  # noqa: E402
from inpaintssl.gan.inpainter import Inpainter  # noqa: E402
from inpaintssl.app.browser import CHROMIUM, CHROMIUM_ARGS, paint_stroke  # noqa: E402
from inpaintssl.app.serve import ServerThread, create_app  # noqa: E402

CAP = 3 * 2**20                       # upload cap of the test server


def embedded(name: str) -> Path:
    return next(p for p in embedded_photos() if p.stem == name)


def png_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def freeform_hole(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A brush-stroke hole: a thick poly-line through 4 random points, (H, W) bool."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (w, h), 0)
    pts = [(float(rng.uniform(0.2, 0.8) * w), float(rng.uniform(0.2, 0.8) * h)) for _ in range(4)]
    ImageDraw.Draw(img).line(pts, fill=255, width=max(4, min(h, w) // 12), joint="curve")
    return np.asarray(img) >= 128


@pytest.fixture(scope="module")
def inpainter(smoke_run):
    return Inpainter.from_checkpoint(smoke_run)


@pytest.fixture(scope="module")
def server(inpainter):
    with ServerThread(create_app(inpainter, max_upload_bytes=CAP)) as url:
        yield url


def post(url: str, files: dict, **kw) -> httpx.Response:
    return httpx.post(url + "api/inpaint", files=files, timeout=120, **kw)


# ---- the API on real photos ------------------------------------------------------------------------

def _photo_cases():
    cases = [pytest.param(lambda: embedded("chelsea"), id="embedded-chelsea")]
    coco = pytest.mark.skipif(not COCO_VAL.is_dir(), reason=f"real photos not found at {COCO_VAL}")
    cases.append(pytest.param(lambda: sorted(COCO_VAL.glob("*.jpg"))[0], id="coco-val", marks=coco))
    return cases


@pytest.mark.parametrize("photo", _photo_cases())
def test_api_inpaints_real_photo_outside_hole_identical(server, inpainter, photo):
    path = photo()
    rgb = load_rgb(path)
    hole = freeform_hole(*rgb.shape[:2])
    r = post(server, {"image": (path.name, path.read_bytes()), "mask": ("mask.png", png_bytes(hole * np.uint8(255)))})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert path.stem in r.headers["content-disposition"]
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], rgb[~hole])                  # outside the hole: bit-identical
    assert (out[hole] != rgb[hole]).any(axis=-1).mean() > 0.5     # the hole was filled
    assert np.array_equal(out, inpainter(rgb, hole))               # the same rule as `inpaintssl inpaint`


def test_api_large_photo_full_resolution(server):
    """A photo far bigger than the model goes through the context window; size and context are kept."""
    big = np.asarray(Image.fromarray(load_rgb(embedded("coffee"))).resize((1800, 1200), Image.BICUBIC))
    hole = np.zeros(big.shape[:2], bool)
    hole[500:620, 700:1000] = True
    data = png_bytes(big)
    assert len(data) < CAP
    r = post(server, {"image": ("big.png", data), "mask": ("m.png", png_bytes(hole * np.uint8(255)))})
    assert r.status_code == 200, r.text
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    assert out.shape == big.shape
    assert np.array_equal(out[~hole], big[~hole])
    assert int(r.headers["x-hole-pixels"]) == hole.sum()


# ---- bad requests -> 4xx JSON ----------------------------------------------------------------------

def _bad_requests():
    photo = np.full((40, 60, 3), 120, np.uint8)
    good = png_bytes(photo)
    hole = np.zeros((40, 60), np.uint8)
    hole[10:20, 20:30] = 255
    yield "missing-mask", {"files": {"image": ("a.png", good)}}, 400, "missing form field(s) 'mask'"
    yield "missing-image", {"files": {"mask": ("m.png", png_bytes(hole))}}, 400, "'image'"
    yield "non-image", {"files": {"image": ("a.txt", b"this is not a photo"), "mask": ("m.png", png_bytes(hole))}}, \
        400, "field 'image' (a.txt): cannot read image"
    yield "mask-wrong-size", {"files": {"image": ("a.png", good), "mask": ("m.png", png_bytes(hole[:30]))}}, \
        400, "mask is 60x30 but the image is 60x40"
    yield "all-black-mask", {"files": {"image": ("a.png", good), "mask": ("m.png", png_bytes(hole * 0))}}, \
        400, "mask has no hole"
    yield "all-white-mask", {"files": {"image": ("a.png", good), "mask": ("m.png", png_bytes(hole * 0 + 255))}}, \
        400, "entirely white"
    yield "empty-image", {"files": {"image": ("a.png", b""), "mask": ("m.png", png_bytes(hole))}}, 400, "empty file"
    yield "not-multipart", {"json": {"image": "x"}}, 400, "multipart/form-data"
    big = os.urandom(CAP + 1000)
    yield "oversized", {"files": {"image": ("a.png", big), "mask": ("m.png", png_bytes(hole))}}, 413, "limit is 3.0 MB"


@pytest.mark.parametrize("kwargs,status,needle", [pytest.param(*c[1:], id=c[0]) for c in _bad_requests()])
def test_bad_requests_get_json_4xx(server, kwargs, status, needle):
    r = httpx.post(server + "api/inpaint", timeout=60, **kwargs)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert needle in r.json()["error"]


def test_oversized_streamed_upload_without_content_length(server):
    def chunks():                                 # chunked transfer: no Content-Length to check up front
        for _ in range(CAP // 65536 + 4):
            yield b"\0" * 65536
    r = httpx.post(server + "api/inpaint", content=chunks(), timeout=60,
                   headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413 and "exceeds" in r.json()["error"]


def test_decompression_bomb_refused(server, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)        # a 60x40 photo is a "bomb" under this cap
    hole = np.zeros((40, 60), np.uint8)
    hole[5:9, 5:9] = 255
    r = post(server, {"image": ("a.png", png_bytes(np.zeros((40, 60, 3), np.uint8))), "mask": ("m.png", png_bytes(hole))})
    assert r.status_code == 400 and "image too large" in r.json()["error"]


def test_routes_info_samples_and_json_404(server):
    info = httpx.get(server + "api/info").json()
    assert info["preset"] == "smoke" and info["max_upload_bytes"] == CAP
    listing = httpx.get(server + "api/samples").json()
    names = {s["name"]: s for s in listing}
    assert "chelsea" in names and (names["chelsea"]["width"], names["chelsea"]["height"]) == (451, 300)
    r = httpx.get(server + "api/samples/chelsea")
    assert r.status_code == 200 and r.content == embedded("chelsea").read_bytes()
    for bad in ("api/samples/nope", "api/samples/..%2F..%2Fetc%2Fpasswd", "no/such/route"):
        r = httpx.get(server + bad)
        assert r.status_code == 404 and "error" in r.json()
    page = httpx.get(server)
    assert page.status_code == 200 and "<canvas" in page.text and "/static/app.js" in page.text
    assert httpx.get(server + "static/app.js").status_code == 200


# ---- concurrency: queued, not crashed --------------------------------------------------------------

class GatedInpainter:
    """The real model behind a gate the test opens; counts how many calls run at the same time."""

    def __init__(self, inner):
        self.inner, self.name, self.cfg = inner, inner.name, inner.cfg
        self.gate, self.active, self.max_active = threading.Event(), 0, 0

    def __call__(self, rgb, hole):
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            assert self.gate.wait(timeout=60)
            return self.inner(rgb, hole)
        finally:
            self.active -= 1


def _wait_for(cond, what: str):
    deadline = time.monotonic() + 60
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("max_waiting", [2, 0])
def test_concurrent_requests_are_queued_one_inference_at_a_time(inpainter, max_waiting):
    gated = GatedInpainter(inpainter)
    app = create_app(gated, max_upload_bytes=CAP, max_waiting=max_waiting)
    rgb = load_rgb(embedded("chelsea"))
    hole = freeform_hole(*rgb.shape[:2], seed=3)
    files = {"image": ("c.png", png_bytes(rgb)), "mask": ("m.png", png_bytes(hole * np.uint8(255)))}
    with ServerThread(app) as url, ThreadPoolExecutor(3) as pool:
        first = pool.submit(post, url, files)
        _wait_for(lambda: gated.active == 1, "the first request to reach the model")
        if max_waiting == 0:                                   # no room to wait: a clean 503, at once
            busy = post(url, files)
            assert busy.status_code == 503 and "busy" in busy.json()["error"]
            rest = []
        else:
            rest = [pool.submit(post, url, files) for _ in range(2)]
            _wait_for(lambda: app.state.queue.pending == 3, "two requests queued behind the first")
            assert gated.active == 1                           # they wait for the lock, not run
        gated.gate.set()
        results = [first.result()] + [f.result() for f in rest]
    assert all(r.status_code == 200 for r in results)
    assert len({r.content for r in results}) == 1              # same input, same output
    assert gated.max_active == 1 and app.state.queue.pending == 0


# ---- CLI and the demo model ------------------------------------------------------------------------

def test_cli_serve_errors(tmp_path, smoke_run):
    r = CliRunner().invoke(cli, ["serve", "--checkpoint", str(tmp_path / "nope")])
    assert r.exit_code == 1 and "Error:" in r.output and "no such checkpoint" in r.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = CliRunner().invoke(cli, ["serve", "--checkpoint", str(smoke_run), "--port", str(port)])
    assert r.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in r.output
    r = CliRunner().invoke(cli, ["serve", "--checkpoint", str(smoke_run), "--max-upload-mb", "0"])
    assert r.exit_code == 1 and "--max-upload-mb" in r.output


def test_demo_run_trains_once_then_is_reused(tmp_path):
    logs = []
    run = tmp_path / "cache" / "demo-run"
    ensure_demo_run(run, steps=2, progress=False, log=logs.append)
    ckpt = run / "checkpoints" / "latest.pt"
    stamp = ckpt.stat().st_mtime_ns
    assert json.loads((run / "config.json").read_text())["mask"]["kind"] == "mixed"
    photos = prepare_demo_photos(run.parent / "demo-photos", 128)
    assert len(photos) == len(embedded_photos())
    assert all(min(Image.open(p).size) <= 128 for p in photos)
    ensure_demo_run(run, steps=2, progress=False, log=logs.append)
    assert ckpt.stat().st_mtime_ns == stamp and "reusing" in logs[-1]
    ensure_demo_run(run, steps=3, progress=False, log=logs.append)          # more steps: resume, not restart
    assert any(msg.startswith("resuming") for msg in logs)
    import torch
    assert torch.load(ckpt, weights_only=True)["step"] == 3


def test_demo_command_serves_and_stops_on_ctrl_c(tmp_path):
    """`inpaintssl demo --retrain` end to end in a subprocess: trains the tiny model, prints the URL, serves, exits 0."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")   # 1 thread: fast on a busy CI box
    proc = subprocess.Popen([sys.executable, "-m", "inpaintssl", "demo", "--retrain", "--cache-dir", str(tmp_path),
                             "--steps", "2", "--port", "0", "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "serving demo-run (smoke, 32 px) at http://127.0.0.1:" in line, proc.stderr.read() if not line else line
        url = line.split(" at ")[1].split()[0]
        assert httpx.get(url + "api/info").json()["model"] == "demo-run"
        assert (tmp_path / "demo-run" / "checkpoints" / "latest.pt").is_file()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0
    assert "Traceback" not in proc.stderr.read()


def test_demo_serves_the_bundled_model_by_default():
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "inpaintssl", "demo", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert "serving bundled (fcn, 128 px) at http://127.0.0.1:" in line, proc.stderr.read() if not line else line
        url = line.split(" at ")[1].split()[0]
        assert httpx.get(url + "api/info").json()["model"] == "bundled"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0


# ---- end to end in a real headless browser ---------------------------------------------------------

def _browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}; install it with: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                   "(pip install playwright; never needed: `playwright install`)")
    return sync_api


def _photo_for_browser(tmp_path: Path) -> Path:
    """A real photo: the first COCO val image if the shared data is here, else an embedded one enlarged."""
    if COCO_VAL.is_dir():
        return sorted(COCO_VAL.glob("*.jpg"))[0]
    p = tmp_path / "chelsea-900.png"
    Image.fromarray(load_rgb(embedded("chelsea"))).resize((900, 600), Image.BICUBIC).save(p)
    return p


def _distance_to_polyline(h: int, w: int, pts: list[tuple[float, float]]) -> np.ndarray:
    """(H, W) distance of each pixel centre to the poly-line through ``pts`` (image coordinates)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    best = np.full((h, w), np.inf)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
        dx, dy = bx - ax, by - ay
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        best = np.minimum(best, np.hypot(xx - ax - t * dx, yy - ay - t * dy))
    return best


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("INPAINTSSL_SCREENSHOT_DIR"):
        dest = Path(os.environ["INPAINTSSL_SCREENSHOT_DIR"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / name)
    return shot


def _result_bytes(page) -> bytes:
    b64 = page.evaluate("""async () => {
        const blob = await (await fetch(document.getElementById('download').href)).blob();
        const bytes = new Uint8Array(await blob.arrayBuffer());
        let s = ''; for (const b of bytes) s += String.fromCharCode(b);
        return btoa(s); }""")
    import base64
    return base64.b64decode(b64)


@pytest.fixture(scope="module")
def page(server):
    sync_api = _browser()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server)
        pg.wait_for_function("document.getElementById('model-info').textContent.includes('smoke')")
        yield pg
        browser.close()
        assert not errors, errors


def test_browser_paint_stroke_and_inpaint(page, tmp_path):
    photo = _photo_for_browser(tmp_path)
    rgb = load_rgb(photo)
    h, w = rgb.shape[:2]
    page.set_input_files("#file", str(photo))
    page.wait_for_function("document.body.dataset.state === 'ready'")
    assert page.is_disabled("#inpaint")                       # nothing painted yet
    assert page.evaluate("[document.getElementById('mask').width, document.getElementById('mask').height]") == [w, h]
    box = page.locator("#mask").bounding_box()
    s = w / box["width"]                                        # photo px per screen px
    size = int(page.input_value("#size"))
    pts = paint_stroke(page, [(0.30, 0.45), (0.45, 0.55), (0.62, 0.50)])
    page.click("#inpaint")
    page.wait_for_function("document.body.dataset.state === 'done'", timeout=120_000)
    _screenshot(page, tmp_path, "browser_stroke.png")
    out = np.asarray(Image.open(io.BytesIO(_result_bytes(page))))
    assert out.shape == rgb.shape                               # full resolution
    changed = (out != rgb).any(axis=-1)
    dist = _distance_to_polyline(h, w, [((x - box["x"]) * s, (y - box["y"]) * s) for x, y in pts])
    radius = size * s / 2
    assert changed.sum() > 0.3 * (dist <= radius).sum()         # the stroke's area was filled...
    assert dist[changed].max() <= radius + 2                    # ...and nothing away from the stroke changed
    with page.expect_download() as dl:                          # the Download button saves that PNG
        page.click("#download")
    assert dl.value.suggested_filename == f"{photo.stem}-inpainted.png"
    assert Path(dl.value.path()).read_bytes() == _result_bytes(page)


def test_browser_sample_rectangle_undo(page, tmp_path):
    page.select_option("#sample", "astronaut")
    page.wait_for_function("document.body.dataset.state === 'ready' && "
                           "document.getElementById('mask').width === 512")
    rgb = load_rgb(embedded("astronaut"))
    page.check("input[name=tool][value=brush]")
    box = page.locator("#mask").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 20)               # a brush dot, then undo it
    page.mouse.down()
    page.mouse.up()
    assert page.is_enabled("#inpaint")
    page.click("#undo")
    assert page.is_disabled("#inpaint")
    page.mouse.move(box["x"] + 30, box["y"] + 30)               # a dot erased again: the hole is empty
    page.mouse.down()
    page.mouse.up()
    page.check("input[name=tool][value=eraser]")
    page.fill("#size", "120")
    page.mouse.move(box["x"] + 30, box["y"] + 30)
    page.mouse.down()
    page.mouse.up()
    page.click("#inpaint")
    page.wait_for_function("document.body.dataset.state === 'error'")
    assert "hole is empty" in page.text_content("#status")
    page.click("#clear")
    assert page.is_enabled("#undo")                             # clear is undoable, and leaves nothing to fill
    page.check("input[name=tool][value=rect]")                  # a rectangle hole
    s = 512 / box["width"]
    x0, y0, x1, y1 = box["x"] + 0.4 * box["width"], box["y"] + 0.3 * box["height"], \
        box["x"] + 0.7 * box["width"], box["y"] + 0.5 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    page.click("#inpaint")
    page.wait_for_function("document.body.dataset.state === 'done'", timeout=120_000)
    _screenshot(page, tmp_path, "browser_rectangle.png")
    out = np.asarray(Image.open(io.BytesIO(_result_bytes(page))))
    assert out.shape == rgb.shape
    ys, xs = np.nonzero((out != rgb).any(axis=-1))
    assert len(ys) > 0.5 * ((x1 - x0) * s) * ((y1 - y0) * s)
    assert xs.min() >= (x0 - box["x"]) * s - 1 and xs.max() <= (x1 - box["x"]) * s + 1
    assert ys.min() >= (y0 - box["y"]) * s - 1 and ys.max() <= (y1 - box["y"]) * s + 1
