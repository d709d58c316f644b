"""The library page's HTTP side, against a real `dam serve` over a real index (web_library.py):
the JSON endpoints, media by checksum with ranges, what is refused, and the exports."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import av
import pytest

from dam_assets.media.proxy import proxy_path, proxy_reason

from .web_library import ODD_NAME, SPOKEN

KEYS = {"checksum", "path", "start", "end", "score", "thumbnail"}


def test_search_by_words_meaning_and_person(served):
    speech = served.checksums["speech"]
    found = served.json("/api/search?text=footage")["results"]
    assert [m["checksum"] for m in found] == [speech]
    hit = found[0]
    assert set(hit) >= KEYS and hit["path"] == str(served.files["speech"])
    assert 0 <= hit["start"] < hit["end"] <= 6 and "footage" in hit["text"].lower()
    # quoted phrases stay phrases: the same words in another order match nothing
    phrase = urllib.parse.quote('"send the footage"')
    assert [m["checksum"] for m in served.json(f"/api/search?text={phrase}")["results"]] == [speech]
    assert served.json("/api/search?text=" + urllib.parse.quote('"footage the send"')) == {
        "query": '"footage the send"',
        "kind": "text",
        "results": [],
    }
    status, headers, body = served.get(hit["thumbnail"])
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"

    meaning = served.json("/api/search?q=colour+bars&limit=50")["results"]
    assert meaning and all(set(m) >= KEYS for m in meaning)
    assert {m["checksum"] for m in meaning} >= {served.checksums[k] for k in ("bars", "prores")}
    assert meaning == sorted(meaning, key=lambda m: -m["score"])
    # the catalog filters apply: only files of at least 10 s
    long = served.json("/api/search?q=colour+bars&limit=50&min_duration=10")["results"]
    assert long and {m["checksum"] for m in long} <= {
        served.checksums[k] for k in ("bars", "camA", "camB")
    }

    people = served.json("/api/people")["people"]
    assert len(people) == 2
    red = next(p for p in people if p["appearances"][0]["checksum"] == served.checksums["faces"])
    moments = served.json(f"/api/search?person={red['person_id']}")["results"]
    assert moments and {m["checksum"] for m in moments} == {served.checksums["faces"]}
    assert all(set(m) >= KEYS and m["end"] > m["start"] for m in moments)
    assert served.get("/api/search?person=nobody")[0] == 404
    assert served.get("/api/search")[0] == 400


def test_search_by_a_dropped_still(served):
    """The still is POSTed as the page's form does (multipart) or as the body itself."""
    still = next(Path(served.data, "thumbnails").rglob("poster_small.jpg")).read_bytes()
    origin = {"Origin": served.url, "Content-Type": "image/jpeg"}
    status, _, body = served.post("/api/search", still, origin)
    assert status == 200, body
    results = json.loads(body)["results"]
    assert results and all(set(m) >= KEYS for m in results)
    assert served.post("/api/search", b"not a picture", origin)[0] == 400


def test_media_by_checksum_with_ranges(served):
    checksum = served.checksums["bars"]
    original = served.files["bars"].read_bytes()
    status, headers, body = served.get(f"/media/{checksum}")
    assert status == 200 and body == original and headers["accept-ranges"] == "bytes"
    status, headers, body = served.get(f"/media/{checksum}", {"Range": "bytes=100-199"})
    assert status == 206 and body == original[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(original)}"
    assert served.get(f"/media/{checksum}", {"Range": "bytes=-50"})[2] == original[-50:]
    assert served.get(f"/media/{checksum}", {"Range": "bytes=10-"})[2] == original[10:]
    for bad in ("bytes=abc", "bytes=200-100", "items=0-10", "bytes="):
        assert served.get(f"/media/{checksum}", {"Range": bad})[0] == 400, bad
    status, headers, _ = served.get(f"/media/{checksum}", {"Range": f"bytes={len(original)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(original)}"
    head = served.get(f"/media/{checksum}", method="HEAD")
    assert head[0] == 200 and head[1]["content-length"] == str(len(original)) and not head[2]
    # the ProRes original needs its proxy, which plays from the same times
    prores = served.checksums["prores"]
    facts = served.json(f"/api/files/{prores}")
    assert facts["proxy"]["needed"] and facts["proxy"]["ready"]
    assert facts["play"] == f"/proxy/{prores}" and "ProRes" in facts["proxy"]["why"]
    status, headers, body = served.get(facts["play"], {"Range": "bytes=0-7"})
    assert status == 206 and body[4:8] == b"ftyp"


def test_only_registered_checksums_are_served(served):
    checksum = served.checksums["bars"]
    unknown = "0" * 64
    for path in (
        f"/media/{unknown}",
        "/media/..%2f..%2fetc%2fpasswd",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        f"/media/{checksum[:12]}",
        f"/media/{checksum.upper()}",
        f"/proxy/{checksum}",  # it plays as it is: no proxy
        f"/thumbs/{checksum}/../../../registry.sqlite",
        f"/thumbs/{checksum}/%2e%2e/%2e%2e/%2e%2e/registry.sqlite",
        f"/thumbs/{checksum}/.hidden",
        f"/thumbs/{checksum}/faces/../poster_small.jpg",
        f"/thumbs/{unknown}/poster_small.jpg",
        f"/captions/{unknown}.vtt",
        "/captions/..%2fregistry.sqlite",
        f"/api/files/{unknown}",
        "/api/files/..%2f..%2fetc%2fpasswd",
        "/export/file/" + unknown,
    ):
        status, _, body = served.get(path)
        assert 400 <= status < 500, (path, status)
        assert b"root:" not in body and b"SQLite format" not in body
    assert served.get(f"/thumbs/{checksum}/poster_small.jpg")[0] == 200
    assert served.get(f"/captions/{served.checksums['speech']}.vtt")[2].startswith(b"WEBVTT")


def test_writes_need_the_pages_own_origin_and_follow_the_cli_rules(served):
    people = served.json("/api/people")["people"]
    pid = people[0]["person_id"]
    form = b"name=Rosa+Parks"
    plain = {"Content-Type": "application/x-www-form-urlencoded"}
    for headers in ({}, {"Origin": "http://evil.example"}, {"Referer": "http://evil.example/x"}):
        status, _, _ = served.post(f"/people/{pid}/name", form, {**plain, **headers})
        assert status == 403, headers
    # DNS rebinding: another name for this address is not this page
    rebound = {**plain, "Host": "evil.example:80", "Origin": "http://evil.example:80"}
    assert served.post(f"/people/{pid}/name", form, rebound)[0] == 400
    listed = json.loads(served.dam("faces", "list", "--json").stdout)
    assert all(p["name"] != "Rosa Parks" for p in listed)
    # the same rules as `dam faces label`: a name that reads as an id is refused
    own = {**plain, "Origin": served.url}
    status, _, body = served.post(f"/api/people/{pid}/name", b"name=1234", own)
    assert status == 400 and b"person id" in json.loads(body)["error"].encode()


def test_file_facts_and_escaped_names(served):
    speech = served.json(f"/api/files/{served.checksums['speech']}")
    assert speech["probe"]["video_codec"] == "h264" and speech["play"].startswith("/media/")
    assert [s["stream_type"] for s in speech["streams"]] == ["video", "audio"]
    assert SPOKEN.split()[2] in " ".join(s["text"].lower() for s in speech["segments"])
    assert speech["captions"] and speech["scenes"] and not speech["proxy"]["needed"]
    odd = served.checksums["odd"]
    status, _, page = served.get(f"/clip/{odd}")
    assert status == 200
    text = page.decode()
    assert "<img src=x onerror" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert served.json(f"/api/files/{odd}")["name"] == ODD_NAME
    status, _, page = served.get("/?q=colour+bars&limit=50")
    assert status == 200 and "onerror=alert(1)&gt;" in page.decode()
    assert "<img src=x onerror" not in page.decode()


def test_sessions_and_status(served):
    [session] = served.json("/api/sessions")["sessions"]
    detail = served.json(f"/api/sessions/{session['session_id']}")
    cams = {c["camera"]: c for c in detail["cameras"]}
    assert set(cams) == {"A", "B"} and cams["A"]["role"] == "hero"
    assert cams["B"]["offset_s"] == pytest.approx(1.5, abs=0.04) and cams["B"]["confidence"] > 0.3
    status = served.json("/api/status")
    assets = {a["asset"]: a for a in status["assets"]["rows"]}
    assert assets["probe"]["materialized"] == len(served.files) - 1
    assert assets["probe"]["failed"] == 1 and assets["proxies"]["materialized"] == 1
    [error] = status["errors"]  # the text file named .mp4, and why
    assert error["checksum"] == served.checksums["broken"] and error["stage"] == "probe"
    assert error["path"] == str(served.files["broken"]) and error["message"]
    assert status["dagster"] == "http://dagster.example:3000"
    page = served.get("/status")[2].decode()
    assert "shot_notes.mp4" in page and "http://dagster.example:3000/assets/probe" in page


def test_status_says_what_waits_for_a_model_and_how_to_install_it(served):
    """The skip a model asset records when its weights are missing (load_or_skip), with the
    message the real model raises."""
    from dam_assets.models.base import ModelUnavailable
    from dam_assets.models.clip import ClipModel, ClipSettings
    from dam_assets.storage import Store

    settings = ClipSettings(model="ViT-B-32", pretrained=str(served.data / "no-such.safetensors"))
    with pytest.raises(ModelUnavailable) as missing:
        ClipModel(settings, served.data / "models").load()
    store = Store(served.data)
    store.record_skip("clip_embeddings", settings.model, str(missing.value))
    try:
        [skip] = served.json("/api/status")["skips"]
        assert skip["stage"] == "clip_embeddings" and skip["message"] == str(missing.value)
        page = served.get("/status")[2].decode()
        assert "clip_embeddings" in page and "no-such.safetensors" in page
    finally:
        store.clear_skip("clip_embeddings")


def _otio(body: bytes, fmt: str):
    import opentimelineio as otio

    adapter = {"otio": "otio_json", "fcpxml": "fcpx_xml", "xml": "fcp_xml", "edl": "cmx_3600"}
    return otio.adapters.read_from_string(body.decode(), adapter_name=adapter[fmt])


def _clip_names(timeline) -> list[str]:
    return [c.name for c in timeline.find_clips()]


def test_exports_download_and_read_back_with_otio(served):
    """One download per kind (current results, a clip, a person, a session), each read back
    with OpenTimelineIO and compared with what the page shows."""
    import opentimelineio as otio

    moments = served.json("/api/search?text=footage")["results"]
    code, headers, body = served.get("/export/moments?text=footage&format=edl")
    assert code == 200 and headers["content-type"].startswith("text/plain"), body[:300]
    assert headers["content-disposition"] == 'attachment; filename="footage.edl"'
    clips = _otio(body, "edl").find_clips()
    assert len(clips) == len(moments) == 1
    assert clips[0].name == served.files["speech"].name

    speech = served.checksums["speech"]
    code, headers, body = served.get(f"/export/file/{speech}?format=xml")
    assert code == 200 and headers["content-type"].startswith("application/xml")
    assert headers["content-disposition"] == 'attachment; filename="ana_interview.xml"'
    video = next(iter(_otio(body, "xml").video_tracks()))
    [clip] = video.find_clips()
    assert clip.name == served.files["speech"].name
    lines = [s["text"] for s in served.json(f"/api/files/{speech}")["segments"]]
    assert lines and set(lines) <= {m.name for m in clip.markers}

    person = served.json("/api/people")["people"][0]
    code, headers, body = served.get(f"/export/person/{person['person_id']}?format=fcpxml")
    assert code == 200 and headers["content-disposition"].startswith("attachment; filename=")
    names = _clip_names(_otio(body, "fcpxml"))
    shown = served.json(f"/api/search?person={person['person_id']}")["results"]
    assert shown and len(names) == len(shown) and set(names) == {m["name"] for m in shown}
    # the faces clips run at 10 fps, which SMPTE timecode (FCP 7 XML) cannot count: refused
    code, _, body = served.get(f"/export/person/{person['person_id']}?format=xml")
    assert code == 409 and b"SMPTE timecode, which has no 10 fps" in body

    [session] = served.json("/api/sessions")["sessions"]
    code, headers, body = served.get(f"/export/session/{session['session_id']}?format=otio")
    assert code == 200 and headers["content-type"].startswith("application/json")
    timeline = _otio(body, "otio")
    assert isinstance(timeline, otio.schema.Timeline)
    assert set(_clip_names(timeline)) == {"A001.mp4", "B001.mp4"}

    assert served.get("/export/moments?text=nothing+like+this")[0] == 404
    assert served.get(f"/export/file/{speech}?format=doc")[0] == 409


def test_the_pages_download_links_export_what_it_shows(served):
    """The search page's "download as" links carry the search as shown (how the box was
    read, and the filters) to the export."""
    import html
    import re

    for search, kind in (("q=footage&mode=text&min_duration=1", "text"),
                         ("q=colour+bars&min_height=100", "q")):  # fmt: skip
        status, _, page = served.get(f"/?{search}")
        shown = re.findall(r'<li class="moment" data-checksum="([0-9a-f]{64})"', page.decode())
        links = re.findall(r'href="(/export/moments\?[^"]+format=otio)"', page.decode())
        assert status == 200 and shown and len(links) == 1, search
        code, _, body = served.get(html.unescape(links[0]))
        assert code == 200, (links[0], body[:300])
        clips = next(iter(_otio(body, "otio").video_tracks())).find_clips()
        assert [c.metadata["dam"]["checksum"] for c in clips] == shown, kind


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_reading_the_page_writes_nothing(served):
    """Searching, playing, status and downloads leave the data folder as it was: no lake
    file, no catalog rewrite, no registry or vector change."""
    before = _tree(served.data)
    speech, bars = served.checksums["speech"], served.checksums["bars"]
    person = served.json("/api/people")["people"][0]["person_id"]
    [session] = served.json("/api/sessions")["sessions"]
    for path in (
        "/?q=colour+bars", "/?q=footage&mode=text", "/api/search?q=bars&min_height=100",
        f"/api/search?person={person}", f"/clip/{speech}", f"/api/files/{bars}", "/people",
        f"/people/{person}", "/sessions", f"/sessions/{session['session_id']}", "/status",
        "/api/status", f"/media/{bars}", f"/export/file/{speech}?format=otio",
        f"/export/session/{session['session_id']}?format=fcpxml",
    ):  # fmt: skip
        assert served.get(path)[0] == 200, path
    assert _tree(served.data) == before


def test_serve_warns_when_bound_beyond_this_machine(served):
    import subprocess
    import sys

    from .web_library import _free_port

    server = subprocess.Popen(
        [sys.executable, "-m", "dam_assets.cli", "serve", "--host", "0.0.0.0",
         "--port", str(_free_port())],
        env=served.env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = server.stderr.readline()
        assert "WARNING: listening on 0.0.0.0" in first and "no login" in first, first
        assert "the library page is on http://0.0.0.0:" in server.stderr.readline()
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:  # a loaded machine: the warning is what is tested
            server.kill()
            server.wait()
    from dam_assets.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.1", 8765)


def test_which_files_need_a_proxy():
    h264 = {"media_kind": "video", "container": "mov,mp4,m4a,3gp,3g2,mj2", "video_codec": "h264",
            "audio_codec": "aac", "bit_depth": 8, "path": "/a/b.mov"}  # fmt: skip
    assert proxy_reason(h264, {"pix_fmt": "yuv420p"}) is None
    assert "4:2:2" in proxy_reason(h264, {"pix_fmt": "yuv422p10le"})
    assert "ProRes" in proxy_reason({**h264, "video_codec": "prores"}, None)
    assert "HEVC" in proxy_reason({**h264, "video_codec": "hevc"}, None)
    assert "pcm_s24le audio" in proxy_reason({**h264, "audio_codec": "pcm_s24le"}, None)
    assert "mxf" in proxy_reason({**h264, "container": "mxf"}, None)
    webm = {**h264, "container": "matroska,webm", "video_codec": "vp9", "audio_codec": "opus"}
    assert proxy_reason({**webm, "path": "/a/b.webm"}, None) is None
    assert proxy_reason({**webm, "path": "/a/b.mkv"}) is not None
    assert proxy_reason({**h264, "media_kind": "audio"}, None) is None


def test_a_proxy_keeps_the_originals_times(served):
    """Seeking the proxy to a moment shows the original's picture at that moment."""
    checksum = served.checksums["prores"]
    proxy = proxy_path(served.data / "proxies", checksum)
    with av.open(str(served.files["prores"])) as c:
        original = [round(f.time, 3) for f in c.decode(video=0)]
    with av.open(str(proxy)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
        assert max(stream.width, stream.height) <= 640 and c.streams.audio
        times = [round(f.time, 3) for f in c.decode(video=0)]
    assert times == [t - original[0] for t in original]


def test_nightly_proxies_asks_only_for_what_is_missing(served):
    """With the ProRes proxy made, nothing; on an instance where nothing was made, one run of
    exactly the one partition that needs a proxy (the others play as they are)."""
    from datetime import UTC, datetime

    from dagster import DagsterInstance, SkipReason, instance_for_test
    from dagster import build_schedule_context as context

    from dam_assets.defs.common.partitions import MEDIA_PARTITIONS_NAME
    from dam_assets.defs.common.ranges import RANGE_END_TAG, RANGE_START_TAG
    from dam_assets.defs.media.proxy_jobs import nightly_proxies
    from dam_assets.defs.resources import DamStorage

    storage = DamStorage(data_dir=str(served.data))
    at = datetime(2026, 11, 23, 1, tzinfo=UTC)
    with DagsterInstance.from_config(served.env["DAGSTER_HOME"]) as instance:
        keys = list(instance.get_dynamic_partitions(MEDIA_PARTITIONS_NAME))
        done = nightly_proxies(context(instance, scheduled_execution_time=at), storage=storage)
    assert isinstance(done, SkipReason) and f"among {len(keys)} partitions" in done.skip_message
    with instance_for_test() as fresh:
        fresh.add_dynamic_partitions(MEDIA_PARTITIONS_NAME, keys)
        [request] = nightly_proxies(context(fresh, scheduled_execution_time=at), storage=storage)
    prores = served.checksums["prores"]
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (prores, prores)
    assert request.run_key == "proxies-2026-11-23-0"
