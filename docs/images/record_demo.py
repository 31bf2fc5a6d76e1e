"""Record the README's animation and the screenshots of ``kgc serve`` in docs/images.

    python docs/images/record_demo.py

Starts ``kgc serve`` with the default model on 127.0.0.1 over a fresh store, fills the graph with the
sample news texts (docs/examples/graph), then drives the page in headless Chromium (Debian's ``chromium``,
or ``KGC_CHROMIUM``) through one extraction: type a text, pick a preset, extract, open the graph, click a
node. Frames are screenshots taken along the way; Pillow turns them into ``serve-demo.gif``. Chinese
glyphs need a CJK font (Debian: fonts-wqy-microhei).
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from servers import KgcServer  # noqa: E402

OUT = Path(__file__).resolve().parent
TEXT = "Marie Curie worked at the University of Paris and was born in Warsaw."
PRESET = "News graph (NER + RE)"
VIEWPORT = {"width": 1280, "height": 800}
GIF_WIDTH = 960


class Film:
    """Screenshots with how long each stays on screen."""

    def __init__(self, page):
        self.page, self.frames = page, []

    def shot(self, ms: int = 120) -> None:
        self.frames.append((Image.open(io.BytesIO(self.page.screenshot())).convert("RGB"), ms))

    def hold(self, ms: int) -> None:
        self.shot(ms)

    def save(self, path: Path) -> None:
        height = round(VIEWPORT["height"] * GIF_WIDTH / VIEWPORT["width"])
        frames = [image.resize((GIF_WIDTH, height), Image.LANCZOS) for image, _ in self.frames]
        frames = [f.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for f in frames]
        frames[0].save(path, save_all=True, append_images=frames[1:], loop=0, optimize=True,
                       duration=[ms for _, ms in self.frames], disposal=1)


def fill_store(server: KgcServer) -> None:
    tasks = [{"task": "NER", "labels": ["person", "location", "organization"]},
             {"task": "RE", "labels": ["work for", "live in", "located in", "organization based in"]}]
    texts = (ROOT / "docs/examples/graph/news.en.txt").read_text(encoding="utf-8").splitlines()
    for text in filter(None, texts):
        if text != TEXT:
            status, body = server.post("/api/extract", {"text": text, "tasks": tasks, "ingest": True})
            assert status == 200, body
    zh = [{"task": "NER", "labels": ["人物", "地点", "组织"]}]
    for text in filter(None, (ROOT / "docs/examples/graph/news.zh.txt").read_text(encoding="utf-8").splitlines()):
        status, body = server.post("/api/extract", {"text": text, "tasks": zh, "ingest": True})
        assert status == 200, body


def record(page, film: Film) -> None:
    page.wait_for_selector("#server-info:has-text('llamacpp')")
    film.hold(900)
    page.select_option("#preset-select", label=PRESET)
    film.hold(700)
    page.click("#text-input")
    for i in range(0, len(TEXT), 6):
        page.keyboard.type(TEXT[i:i + 6])
        film.shot(90)
    page.check("#ingest")
    film.hold(500)
    page.click("#extract-button")
    film.shot(400)
    waiting = 0
    while not page.locator("#results-body:not([hidden])").count():
        page.wait_for_timeout(500)
        waiting += 1
        if waiting <= 16:  # the animation shows at most 8 s of the wait, whatever the machine takes
            film.shot(500)
    page.wait_for_timeout(900)
    film.hold(3500)
    page.screenshot(path=OUT / "serve-extract.png")

    page.click("#tab-graph")
    page.wait_for_function("() => window.kgc.storeGraph && window.kgc.storeGraph.nodes().length > 0")
    page.wait_for_timeout(1200)
    film.hold(1500)
    position = page.evaluate("""() => { const n = window.kgc.storeGraph.nodes()
        .filter(n => n.data('label') === 'Marie Curie')[0] || window.kgc.storeGraph.nodes()[0];
        return n.renderedPosition(); }""")
    box = page.locator("#store-graph").bounding_box()
    page.mouse.click(box["x"] + position["x"], box["y"] + position["y"])
    page.wait_for_selector("#entity-panel [data-testid=entity-name]")
    page.wait_for_timeout(600)
    film.hold(4000)
    page.screenshot(path=OUT / "serve-graph.png")

    page.click("#tab-sparql")
    page.click("#sparql-run")
    page.wait_for_selector("[data-testid=sparql-table]")
    page.wait_for_timeout(300)
    page.screenshot(path=OUT / "serve-sparql.png")


def main() -> None:
    chromium = os.environ.get("KGC_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        sys.exit("no chromium on PATH (apt-get install chromium, or set KGC_CHROMIUM)")
    with tempfile.TemporaryDirectory() as tmp, KgcServer(Path(tmp) / "kg") as server:
        fill_store(server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(server.url + "/")
            film = Film(page)
            record(page, film)
            film.save(OUT / "serve-demo.gif")
            browser.close()
    for name in ("serve-demo.gif", "serve-extract.png", "serve-graph.png", "serve-sparql.png"):
        print(f"{OUT / name}: {(OUT / name).stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
