"""The web page of ``kgc serve`` in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
extract with the real default model, see the marked mentions and the graph, click a node, search, run
SPARQL, export, review merge proposals; a server with a token; errors shown, not thrown.

Playwright's own browser download is never used: the tests point Playwright at the system Chromium
(``KGC_CHROMIUM`` or ``chromium`` on PATH). Without one they are skipped, unless ``KGC_REQUIRE_BROWSER``
is set (CI sets it), in which case they fail.
"""

from __future__ import annotations

import os
import re
import shutil
from urllib.parse import quote

import pytest

from servers import KgcServer

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("KGC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    if os.environ.get("KGC_REQUIRE_BROWSER"):
        raise RuntimeError("KGC_REQUIRE_BROWSER is set but no chromium was found (apt-get install chromium)")
    pytest.skip("no chromium on PATH (apt-get install chromium, or set KGC_CHROMIUM)", allow_module_level=True)

TEXT = "Ada Lovelace worked with Charles Babbage in London."
ZH_TEXT = "马云在杭州创办了阿里巴巴。"
NER = ["person", "location", "organization"]
RE = ["work for", "live in", "located in", "organization based in"]
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The default model and a store that already holds duplicates for the resolver to propose."""
    from kgc_graph.graph import Graph
    from kgc_graph.model import Document, Result

    store = tmp_path_factory.mktemp("page") / "kg"
    with Graph.open(str(store)) as graph:
        graph.add([
            Document("eu-1", "The European Union met in Brussels.",
                     {"NER": Result("NER", {"organization": ["European Union"]}, "mentions")}),
            Document("eu-2", "Leaders of the European Union met.",
                     {"NER": Result("NER", {"organization": ["the European Union"]}, "mentions")}),
        ])
    with KgcServer(store) as running:
        yield running


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1366, "height": 860}, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url + "/")
    page.wait_for_selector("#server-info:has-text('llamacpp')")
    yield page
    page.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def expected(task: str, labels: list[str], text: str = TEXT) -> dict:
    from kgcore import Extractor

    with Extractor(task, labels=labels) as extract:
        return extract(text).as_dict()


def set_labels(page, task: str, labels: list[str]) -> None:
    """Replace a task card's labels by typing them, as a person would."""
    card = page.locator(f"[data-testid=task-{task}]")
    while card.locator("[data-testid=label-chip] button").count():
        card.locator("[data-testid=label-chip] button").first.click()
    field = page.locator(f"[data-testid=label-input-{task}]")
    for label in labels:
        field.fill(label)
        field.press("Enter")


def extract(page, text: str, *, ingest: bool) -> None:
    page.fill("#text-input", text)
    page.set_checked("#ingest", ingest)
    page.click("#extract-button")
    page.wait_for_selector("#results-body:not([hidden])", timeout=WAIT_MS)


def marks(page, task: str) -> set[tuple[str, str]]:
    found = page.locator(f"#annotated-text mark[data-task={task}]")
    return {(found.nth(i).inner_text().splitlines()[0].strip(), found.nth(i).get_attribute("data-label"))
            for i in range(found.count())}


def click_node(page, graph: str, container: str, label: str) -> None:
    """A real mouse click where Cytoscape drew the node."""
    position = page.evaluate(
        "([graph, label]) => { const n = window.kgc[graph].nodes().filter(n => n.data('label') === label)[0];"
        " return n ? n.renderedPosition() : null; }", [graph, label])
    assert position, f"no node {label!r} in the {graph}"
    box = page.locator(container).bounding_box()
    page.mouse.click(box["x"] + position["x"], box["y"] + position["y"])


def test_extract_marks_the_mentions_and_draws_the_graph(page):
    ner, re_ = expected("NER", NER), expected("RE", RE)
    page.select_option("#preset-select", label="News graph (NER + RE)")
    extract(page, TEXT, ingest=True)

    assert marks(page, "NER") == {(s["text"], s["label"]) for s in ner["spans"]}
    rows = page.locator("[data-testid=triple-row]")
    shown = {tuple(rows.nth(i).locator("td").nth(j).inner_text() for j in range(3)) for i in range(rows.count())}
    assert shown == {tuple(t) for t in ner["triples"] + re_["triples"]}
    nodes = set(page.evaluate("window.kgc.resultGraph.nodes().map(n => n.data('label'))"))
    assert nodes == {h for h, _, _ in ner["triples"]} | {n for h, _, t in re_["triples"] for n in (h, t)}
    assert page.locator("[data-testid=parse-failure]").count() == 0
    assert "added to the graph" in page.inner_text("#result-summary")


def test_chinese_text_with_chinese_labels(page):
    answer = expected("NER", ["人物", "地点", "组织"], ZH_TEXT)
    page.click("[data-example=zh]")
    page.select_option("#preset-select", label="MSRA 实体 · NER")
    set_labels(page, "NER", ["人物", "地点", "组织"])
    extract(page, ZH_TEXT, ingest=False)
    assert marks(page, "NER") == {(s["text"], s["label"]) for s in answer["spans"]}
    assert answer["spans"], "the default model found no mention in the Chinese example"


def test_click_a_node_shows_its_facts_and_sentences(page, server):
    status, subgraph = server.get("/api/graph/subgraph?limit=300")
    assert status == 200 and subgraph["edges"], "the extraction test adds a relation first"
    edge = subgraph["edges"][0]
    names = {n["id"]: n["label"] for n in subgraph["nodes"]}
    head, tail = names[edge["source"]], names[edge["target"]]

    page.click("#tab-graph")
    page.wait_for_function("() => window.kgc.storeGraph && window.kgc.storeGraph.nodes().length > 0")
    page.wait_for_timeout(800)  # the layout settles
    click_node(page, "storeGraph", "#store-graph", tail)
    panel = page.locator("#entity-panel")
    sync_api.expect(panel.locator("[data-testid=entity-name]")).to_have_text(tail)
    sync_api.expect(panel.locator("[data-testid=fact-other]").first).to_have_text(head)
    fact_spans = panel.locator("[data-testid=facts] [data-testid=sentence-span]")
    assert {fact_spans.nth(i).inner_text() for i in range(fact_spans.count())} == {head, tail}
    assert panel.locator("[data-testid=mentions] [data-testid=sentence-span]").first.inner_text() == tail
    assert TEXT in [panel.locator("[data-testid=sentence]").nth(i).inner_text()
                    for i in range(panel.locator("[data-testid=sentence]").count())]


def test_search_finds_an_entity(page):
    page.click("#tab-graph")
    page.fill("#graph-search", "Europ")
    hits = page.locator("[data-testid=search-hit]")
    sync_api.expect(hits.first).to_be_visible()
    found = [hits.nth(i).inner_text() for i in range(hits.count())]
    assert any(h.startswith("European Union") for h in found), found
    hits.filter(has_text="the European Union").click()
    sync_api.expect(page.locator("#entity-panel [data-testid=entity-name]")).to_have_text("the European Union")


def test_sparql_box_answers_like_the_endpoint(page, server):
    query = "SELECT ?name WHERE { ?e a kgc:Entity ; rdfs:label ?name } ORDER BY ?name"
    status, body = server.get("/sparql?query=" + quote(query), headers={"Accept": "application/sparql-results+json"})
    assert status == 200, body
    names = [b["name"]["value"] for b in body["results"]["bindings"]]
    assert {"European Union", "the European Union", "London"} <= set(names)

    page.click("#tab-sparql")
    page.fill("#sparql-input", query)
    page.click("#sparql-run")
    rows = page.locator("[data-testid=sparql-table] tbody tr")
    sync_api.expect(rows).to_have_count(len(names))
    assert [rows.nth(i).inner_text().strip() for i in range(rows.count())] == names


def test_export_downloads_a_graph_that_parses(page):
    rdflib = pytest.importorskip("rdflib")
    page.click("#tab-graph")
    with page.expect_download() as download:
        page.click("[data-testid=export-ttl]")
    graph = rdflib.Graph().parse(download.value.path(), format="turtle")
    labels = {str(o) for o in graph.objects(predicate=rdflib.RDFS.label)}
    assert {"European Union", "the European Union", "London"} <= labels


def test_merge_proposals_can_be_accepted(page, server):
    page.click("#tab-resolve")
    page.fill("#threshold", "80")
    page.click("#proposals-load")
    proposal = page.locator("[data-testid=proposal]").filter(has_text="European Union")
    sync_api.expect(proposal).to_have_count(1)
    proposal.locator("[data-testid=accept]").click()
    decision = proposal.locator("[data-testid=decision]")
    sync_api.expect(decision).to_have_class(re.compile(r"\baccept\b"))
    sync_api.expect(decision).to_contain_text("Merged into")
    status, hits = server.get("/api/graph/search?q=European%20Union")
    assert status == 200, hits
    iris = {h["label"]: h["entity"] for h in hits}
    for name in ("European Union", "the European Union"):
        status, entity = server.get("/api/graph/entity?iri=" + quote(iris[name]))
        assert status == 200 and entity["canonical"] == iris["European Union"], entity
    page.click("#proposals-load")
    sync_api.expect(page.locator("[data-testid=proposal]").filter(has_text="European Union")).to_have_count(0)


def test_token_and_errors(browser, tmp_path):
    with KgcServer(tmp_path / "kg", "--max-text-chars", "60", token="s3cret") as server:
        page = browser.new_page()
        page.goto(server.url + "/")
        sync_api.expect(page.locator("#token-form")).to_be_visible()
        page.fill("#token-input", "wrong")
        page.click("[data-testid=token-submit]")
        sync_api.expect(page.locator("#token-form")).to_contain_text("did not accept")
        page.fill("#token-input", "s3cret")
        page.click("[data-testid=token-submit]")
        page.wait_for_selector("#server-info:has-text('llamacpp')")
        page.fill("#text-input", "x" * 61)
        page.click("#extract-button")
        banner = page.get_by_role("alert")
        sync_api.expect(banner).to_contain_text("60")
        assert "Traceback" not in banner.inner_text()
        page.close()
