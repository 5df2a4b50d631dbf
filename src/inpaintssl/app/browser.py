"""Drive the demo page in headless Chromium with Playwright: the browser tests and scripts/demo_screenshot.py.

Debian's Chromium (``apt-get install -y chromium``) at :data:`CHROMIUM`, started with :data:`CHROMIUM_ARGS`
(no sandbox as root, no GPU, and no background networking, which this machine's closed network refuses).
Playwright is imported by the caller; nothing here downloads a browser.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def paint_stroke(page, fractions: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Paint one brush stroke through ``fractions`` (x, y of the mask canvas, in [0, 1]) with the mouse;
    returns the points in screen pixels."""
    box = page.locator("#mask").bounding_box()
    pts = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in fractions]
    page.mouse.move(*pts[0])
    page.mouse.down()
    for p in pts[1:]:
        page.mouse.move(*p, steps=8)
    page.mouse.up()
    return pts
