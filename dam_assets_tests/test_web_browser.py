"""The library page in a real browser: Playwright driving Debian's chromium (`make test`
installs it) against the `dam serve` of web_library.py. Also takes the README's screenshots
(docs/screenshots/), so they show what the page really looks like."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# `make screenshots` sets this to docs/screenshots; otherwise they go to a scratch folder, so a
# test run never changes the working tree (the shots are still taken: their code is tested).
SHOTS = Path(
    os.environ.get("DAM_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "dam-screenshots"
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():  # `make test` installs it (system-deps)
        pytest.skip("Debian's chromium is not installed here: apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=served.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == [], errors  # no script error on any page


def shot(page, name: str, full: bool = False) -> None:
    """A README screenshot: 960 px wide, 128 colours, so the repository stays small."""
    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    with Image.open(io.BytesIO(page.screenshot(full_page=full))) as image:
        small = image.convert("RGB")
        small.thumbnail((960, 1600))
        small = small.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        small.save(SHOTS / f"{name}.png", optimize=True)


def player_time(page) -> float:
    return page.evaluate("document.getElementById('player').currentTime")


def test_words_find_the_spoken_line_and_the_player_seeks_to_it(page, served):
    page.goto("/")
    page.fill("#q", '"send the footage"')
    page.select_option("#mode", "text")
    page.click("button[type=submit]")
    said = page.locator(".moment .said")
    assert "footage" in said.first.inner_text().lower()
    card = page.locator(".moment").first
    start = float(card.get_attribute("data-start"))
    assert start > 0.1  # the speech starts after a lead of silence
    card.locator("a.name").click()
    page.wait_for_url("**/clip/*")
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    page.wait_for_function(
        f"Math.abs(document.getElementById('player').currentTime - {start}) < 0.05"
    )
    # a click on a transcript line seeks there; the captions track is the transcripts' VTT
    line = page.locator("button.line").first
    page.evaluate("document.getElementById('player').currentTime = 3.5")
    line.click()
    target = float(line.get_attribute("data-seek"))
    page.wait_for_function(
        f"Math.abs(document.getElementById('player').currentTime - {target}) < 0.3"
    )
    cues = page.evaluate("document.getElementById('player').textTracks[0].cues.length")
    assert cues >= 1
    # the timeline strip: a column per second of the file; a click on one seeks there
    seconds = page.locator("svg.timeline .second")
    duration = page.evaluate("document.getElementById('player').duration")
    assert abs(seconds.count() - duration) <= 1.5
    assert page.locator("svg.timeline .loud").count() >= 1  # the spoken part is loud
    seconds.nth(2).dispatch_event("click")
    page.wait_for_function("Math.abs(document.getElementById('player').currentTime - 2) < 0.3")
    page.evaluate("document.getElementById('player').pause()")
    shot(page, "clip", full=True)


def test_hover_scrub_changes_the_preview(page, served):
    page.goto("/?q=colour+bars&limit=12")
    card = page.locator(f".moment[data-checksum='{served.checksums['bars']}']")
    preview = card.locator(".preview")
    box = preview.bounding_box()
    scrub = card.locator(".scrub")
    seen = []
    for x in (0.05, 0.95):
        page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] / 2)
        page.wait_for_function(
            "([el, old]) => !el.hidden && el.dataset.time && el.dataset.time !== old",
            arg=[scrub.element_handle(), seen[-1][0] if seen else ""],
        )
        seen.append(scrub.evaluate("e => [e.dataset.time, e.style.backgroundPosition]"))
    assert float(seen[0][0]) < float(seen[1][0]) and seen[0][1] != seen[1][1]
    sprite = scrub.evaluate("e => e.style.backgroundImage")
    assert f"/thumbs/{served.checksums['bars']}/sprite.jpg" in sprite
    shot(page, "search")
    page.mouse.move(0, 0)
    assert scrub.is_hidden()


def test_originals_and_proxies_play(page, served):
    for name, source in (("bars", "/media/"), ("prores", "/proxy/")):
        page.goto(f"/clip/{served.checksums[name]}?t=0.5")
        assert source in page.get_attribute("#player", "src")
        page.wait_for_function(
            "document.getElementById('player').readyState >= 2"
            " && document.getElementById('player').videoWidth > 0"
        )
        assert page.evaluate("document.getElementById('player').error") is None
        assert abs(player_time(page) - 0.5) < 0.05


def test_a_session_plays_its_cameras_in_sync(page, served):
    [session] = served.json("/api/sessions")["sessions"]
    page.goto(f"/sessions/{session['session_id']}")
    offset = float(page.locator("figure.camera:not(.hero)").get_attribute("data-offset"))
    page.click("#sync-play")
    page.wait_for_function("!document.querySelector('figure.hero video').paused")
    page.evaluate("document.querySelector('figure.hero video').currentTime = 6")
    page.wait_for_timeout(1200)
    hero, other, playing = page.evaluate(
        "[document.querySelector('figure.hero video').currentTime,"
        " document.querySelector('figure.camera:not(.hero) video').currentTime,"
        " !document.querySelector('figure.camera:not(.hero) video').paused]"
    )
    assert playing and abs((hero - other) - offset) < 0.25, (hero, other, offset)
    page.click("#sync-pause")
    shot(page, "session")


def test_naming_and_merging_people_on_the_page(page, served):
    page.goto("/people")
    shot(page, "people")
    first = page.locator("li.person").first
    pid = first.get_attribute("data-person")
    first.locator("input[name=name]").fill("Ana Lima")
    first.locator("form.rename button").click()
    page.wait_for_url(f"**/people#person-{pid}")
    assert page.locator(f"#person-{pid} a.name").inner_text() == "Ana Lima"
    listed = json.loads(served.dam("faces", "list", "--json").stdout)
    assert {p["person_id"]: p["name"] for p in listed}[int(pid)] == "Ana Lima"
    # the same rule as `dam faces label`: one name, one person
    other = page.locator("li.person").nth(1)
    other.locator("input[name=name]").fill("ana lima")
    other.locator("form.rename button").click()
    assert "already 'Ana Lima'" in page.locator("p.error").inner_text()
    # merge the other person into Ana Lima
    page.goto("/people")
    page.select_option("select[name=keep]", pid)
    other_id = next(o for o in page.locator("select[name=other] option").all()
                    if o.get_attribute("value") != pid).get_attribute("value")  # fmt: skip
    page.select_option("select[name=other]", other_id)
    page.click("form.merge button")
    page.wait_for_url(f"**/people#person-{pid}")
    listed = json.loads(served.dam("faces", "list", "--json").stdout)
    assert [(p["person_id"], p["name"], p["faces"]) for p in listed] == [(int(pid), "Ana Lima", 6)]
    moments = served.json(f"/api/search?person={other_id}")["results"]  # a merged id resolves
    assert {m["checksum"] for m in moments} == {served.checksums[k] for k in ("faces", "faces2")}


def test_status_page(page, served):
    page.goto("/status")
    assert page.locator("table.list td", has_text="proxies").count() == 1
    links = page.locator("a[href^='http://dagster.example:3000/']")
    assert links.count() >= 3
    shot(page, "status", full=True)
