"""The library page (`dam serve`): Starlette routes over `Library`, Jinja2 templates, a little
JavaScript, no build step. JSON endpoints under /api/ are what the pages show (README:
*Library page*)."""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import wraps
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool as run
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..models.base import ModelUnavailable
from ..storage.paths import safe_text
from . import files
from .library import Library, NotServed, Query, query_from

HERE = Path(__file__).resolve().parent
MAX_IMAGE_BYTES = 32 * 2**20
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SEARCH_KEYS = {"q", "text", "person", "mode", "format"}
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; "
     b"media-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
     b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]  # fmt: skip


def _plain(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


class Json(JSONResponse):
    def render(self, content) -> bytes:
        return json.dumps(content, default=_plain, ensure_ascii=False).encode()


def clock(seconds) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours:d}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes:d}:{secs:04.1f}"


def size(n) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters.update(clock=clock, size=size)
templates.env.filters["shown"] = lambda v: "" if v is None else safe_text(v)
templates.env.filters["json"] = lambda v: json.dumps(v, default=_plain)


class SecurityHeaders:
    """Same-origin scripts, media and pictures only; no framing; no sniffing."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        return await self.app(scope, receive, with_headers)


def same_origin(request: Request) -> bool:
    """A write comes from this page: its Origin (else Referer) is this server's own."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def handled(endpoint):
    """NotServed and refused writes become a 4xx answer: JSON for /api/, a page otherwise."""

    @wraps(endpoint)
    async def wrapper(request: Request):
        try:
            if request.method == "POST" and not same_origin(request):
                raise NotServed(403, "writes are accepted only from the library page itself")
            return await endpoint(request)
        except NotServed as exc:
            return _error(request, exc.status, str(exc))
        except ModelUnavailable as exc:
            return _error(request, 503, str(exc))

    return wrapper


def _error(request: Request, status: int, message: str) -> Response:
    if wants_json(request) or request.url.path.split("/")[1] in (
        "media",
        "proxy",
        "thumbs",
        "captions",
        "export",
    ):
        if wants_json(request):
            return Json({"error": message}, status_code=status)
        return PlainTextResponse(message, status_code=status)
    page = {"message": message, "status": status}
    return templates.TemplateResponse(request, "error.html", page, status_code=status)


def _library(request: Request) -> Library:
    return request.app.state.library


async def _image_query(request: Request) -> Query:
    """A POSTed still (a form with an `image` file, or the image itself as the body)."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        async with request.form(max_part_size=MAX_IMAGE_BYTES) as form:
            upload = form.get("image")
            data = await upload.read() if hasattr(upload, "read") else b""
            name = getattr(upload, "filename", "") or ""
            params = {k: v for k, v in form.items() if isinstance(v, str)}
        return query_from(params, data, name)
    body = await request.body()
    if len(body) > MAX_IMAGE_BYTES:
        raise NotServed(413, "the still is larger than 32 MB")
    return query_from(request.query_params, body, "the still")


# -- pages --------------------------------------------------------------------------------------
@handled
async def home(request: Request) -> Response:
    library = _library(request)
    query = await _image_query(request) if request.method == "POST" else None
    query = query or query_from(request.query_params)
    error = None
    results: list[dict] = []
    try:
        results = await run(library.search, query) if query.kind else []
    except (NotServed, ModelUnavailable) as exc:
        error = str(exc)
    export = ""
    if query.kind in ("q", "text", "person"):  # the search as read (not the box and its mode)
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in SEARCH_KEYS]
        export = urlencode([*kept, (query.kind, query.label)])
    page = {
        "query": query,
        "results": results,
        "error": error,
        "params": request.query_params,
        "mode": request.query_params.get("mode")
        or ("text" if query.text else "person" if query.person else "q"),
        "export_query": export,
        "formats": _formats(),
    }
    return templates.TemplateResponse(request, "search.html", page)


@handled
async def clip_page(request: Request) -> Response:
    facts = await run(_library(request).file, request.path_params["checksum"])
    start = request.query_params.get("t") or "0"
    try:
        start_s = max(0.0, float(start))
    except ValueError:
        start_s = 0.0
    page = {"f": facts, "start": start_s, "formats": _formats()}
    return templates.TemplateResponse(request, "clip.html", page)


@handled
async def people_page(request: Request) -> Response:
    page = {"people": await run(_library(request).people), "message": None, "formats": _formats()}
    return templates.TemplateResponse(request, "people.html", page)


@handled
async def person_page(request: Request) -> Response:
    person = await run(_library(request).person, request.path_params["person"])
    page = {"p": person, "formats": _formats()}
    return templates.TemplateResponse(request, "person.html", page)


async def _people_write(request: Request, action) -> Response:
    from ..storage.people import PersonNotFound

    library = _library(request)
    async with request.form() as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        message, anchor = await run(action, library, fields)
    except (PersonNotFound, ValueError) as exc:
        if wants_json(request):
            return Json({"error": str(exc)}, status_code=400)
        page = {"people": await run(library.people), "message": str(exc), "formats": _formats()}
        return templates.TemplateResponse(request, "people.html", page, status_code=400)
    if wants_json(request):
        return Json({"ok": True, "message": message})
    return RedirectResponse(f"/people#person-{anchor}", status_code=303)


@handled
async def name_person(request: Request) -> Response:
    who = request.path_params["person"]

    def act(library: Library, fields: dict):
        return library.label(who, fields.get("name", "")), library.store.people.resolve(who)

    return await _people_write(request, act)


@handled
async def merge_people(request: Request) -> Response:
    def act(library: Library, fields: dict):
        keep, other = fields.get("keep", ""), fields.get("other", "")
        return library.merge(keep, other), library.store.people.resolve(keep)

    return await _people_write(request, act)


@handled
async def sessions_page(request: Request) -> Response:
    page = {"sessions": await run(_library(request).sessions)}
    return templates.TemplateResponse(request, "sessions.html", page)


@handled
async def session_page(request: Request) -> Response:
    session = await run(_library(request).session, request.path_params["session"])
    page = {"s": session, "formats": _formats()}
    return templates.TemplateResponse(request, "session.html", page)


@handled
async def status_page(request: Request) -> Response:
    page = {"s": await run(_library(request).status)}
    return templates.TemplateResponse(request, "status.html", page)


# -- JSON -----------------------------------------------------------------------------------------
@handled
async def api_search(request: Request) -> Response:
    library = _library(request)
    query = await _image_query(request) if request.method == "POST" else None
    query = query or query_from(request.query_params)
    if query.kind is None:
        raise NotServed(400, "give q (meaning), text (spoken words), person, or POST a still")
    results = await run(library.search, query)
    return Json({"query": query.label, "kind": query.kind, "results": results})


@handled
async def api_file(request: Request) -> Response:
    return Json(await run(_library(request).file, request.path_params["checksum"]))


@handled
async def api_people(request: Request) -> Response:
    return Json({"people": await run(_library(request).people)})


@handled
async def api_sessions(request: Request) -> Response:
    return Json({"sessions": await run(_library(request).sessions)})


@handled
async def api_session(request: Request) -> Response:
    return Json(await run(_library(request).session, request.path_params["session"]))


@handled
async def api_status(request: Request) -> Response:
    return Json(await run(_library(request).status))


# -- files ----------------------------------------------------------------------------------------
@handled
async def media(request: Request) -> Response:
    path, st = await run(files.original, _library(request), request.path_params["checksum"])
    download = request.query_params.get("download") == "1"
    return FileResponse(
        path,
        stat_result=st,
        media_type=files.media_type(path),
        filename=safe_text(path.name) if download else None,
    )


@handled
async def proxy(request: Request) -> Response:
    path = await run(files.proxy, _library(request), request.path_params["checksum"])
    return FileResponse(path, media_type="video/mp4")


@handled
async def thumbs(request: Request) -> Response:
    names = request.path_params["rest"].split("/")
    path = await run(files.picture, _library(request), request.path_params["checksum"], names)
    return FileResponse(path, media_type=files.media_type(path))


@handled
async def captions(request: Request) -> Response:
    name = request.path_params["name"]
    if not name.endswith(".vtt"):
        raise NotServed(404, "captions are WebVTT: /captions/<checksum>.vtt")
    path = await run(files.captions, _library(request), name.removesuffix(".vtt"))
    return FileResponse(path, media_type="text/vtt")


# -- exports (issue 15: the editor hand-off as downloads) -----------------------------------------
def _formats() -> list[tuple[str, str]]:
    from ..library.exports import FORMATS

    return [(f.name, f.description) for f in FORMATS.values()]


def _download(data: bytes, fmt: str, stem: str) -> Response:
    from ..library.exports import FORMATS

    spec = FORMATS[fmt]
    safe_stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "dam"
    disposition = f'attachment; filename="{safe_stem}.{spec.name}"'
    return Response(data, media_type=spec.media_type, headers={"content-disposition": disposition})


async def _export(request: Request, make) -> Response:
    from ..library.exports import ExportError, format_for

    try:
        spec = format_for(None, request.query_params.get("format") or "fcpxml")
        data, stem = await run(make, _library(request), spec.name)
    except ExportError as exc:
        raise NotServed(409, str(exc)) from None
    return _download(data, spec.name, stem)


@handled
async def export_moments(request: Request) -> Response:
    from ..library.exports import export_moments as export

    query = query_from(request.query_params)
    if query.kind not in ("q", "text", "person"):
        raise NotServed(400, "give q (meaning), text (spoken words) or person")

    def make(library: Library, fmt: str):
        moments = library.search(query)
        if not moments:
            raise NotServed(404, f"no moment matches {query.label!r}: nothing to export")
        return export(library.store, moments, None, fmt, query=query.label), query.label

    return await _export(request, make)


@handled
async def export_file(request: Request) -> Response:
    from ..library.exports import export_file as export

    def make(library: Library, fmt: str):
        facts = library.file(request.path_params["checksum"])
        return export(library.store, facts["checksum"], None, fmt), Path(facts["name"]).stem

    return await _export(request, make)


@handled
async def export_person(request: Request) -> Response:
    from ..library.exports import export_moments as export

    def make(library: Library, fmt: str):
        person = library.person(request.path_params["person"])
        label = person["name"] or f"person {person['person_id']}"
        moments = library.person_moments(str(person["person_id"]))
        return export(library.store, moments, None, fmt, query=label), label

    return await _export(request, make)


@handled
async def export_session(request: Request) -> Response:
    from ..library.exports import export_session as export

    def make(library: Library, fmt: str):
        session_id = library.session(request.path_params["session"])["session_id"]
        return export(library.store, session_id, None, fmt), session_id

    return await _export(request, make)


def create_app(library: Library | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The ASGI app over one data folder. `allowed_hosts` (Host header names) guards a server
    bound to loopback against DNS rebinding; None allows any."""
    routes = [
        Route("/", home, methods=["GET", "POST"]),
        Route("/clip/{checksum}", clip_page),
        Route("/people", people_page),
        Route("/people/merge", merge_people, methods=["POST"]),
        Route("/people/{person}", person_page),
        Route("/people/{person}/name", name_person, methods=["POST"]),
        Route("/sessions", sessions_page),
        Route("/sessions/{session}", session_page),
        Route("/status", status_page),
        Route("/api/search", api_search, methods=["GET", "POST"]),
        Route("/api/files/{checksum}", api_file),
        Route("/api/people", api_people),
        Route("/api/people/merge", merge_people, methods=["POST"]),
        Route("/api/people/{person}/name", name_person, methods=["POST"]),
        Route("/api/sessions", api_sessions),
        Route("/api/sessions/{session}", api_session),
        Route("/api/status", api_status),
        Route("/media/{checksum}", media, methods=["GET", "HEAD"]),
        Route("/proxy/{checksum}", proxy, methods=["GET", "HEAD"]),
        Route("/thumbs/{checksum}/{rest:path}", thumbs),
        Route("/captions/{name}", captions),
        Route("/export/moments", export_moments),
        Route("/export/file/{checksum}", export_file),
        Route("/export/person/{person}", export_person),
        Route("/export/session/{session}", export_session),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.library = library or Library()
    return app
