"""Screenshot of the demo page after one brush stroke is inpainted (docs/demo-screenshot.png, shown in docs/usage.md).

    python scripts/demo_screenshot.py --photo VOC2007/JPEGImages/000069.jpg --out docs/demo-screenshot.png \
        --stroke 0.20,0.30 0.45,0.42 0.70,0.35

Serves ``--checkpoint`` (default: the bundled model) on a free local port, opens the page in headless
Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright as in ``tests/test_serve.py``), uploads the
photo, paints the poly-line ``--stroke`` (points as fractions of the photo's width, height) with the
page's default brush, presses Inpaint and saves the whole page. Pick a photo the model never saw.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inpaintssl.app.browser import CHROMIUM, CHROMIUM_ARGS, paint_stroke
from inpaintssl.app.serve import ServerThread, create_app
from inpaintssl.gan.inpainter import Inpainter


def point(text: str) -> tuple[float, float]:
    x, y = (float(v) for v in text.split(","))
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise argparse.ArgumentTypeError(f"{text}: give x,y as fractions in [0, 1]")
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--checkpoint", default="bundled")
    ap.add_argument("--stroke", type=point, nargs="+", default=[(0.25, 0.4), (0.5, 0.5), (0.72, 0.45)])
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args()
    if len(args.stroke) < 2:
        ap.error("--stroke needs at least two points")
    from playwright.sync_api import sync_playwright

    model = Inpainter.from_checkpoint(args.checkpoint, device="cpu")
    with ServerThread(create_app(model)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": 800})
        page.goto(url)
        page.set_input_files("#file", str(args.photo))
        page.wait_for_function("document.body.dataset.state === 'ready'")
        paint_stroke(page, args.stroke)
        page.click("#inpaint")
        page.wait_for_function("document.body.dataset.state === 'done'", timeout=120_000)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
