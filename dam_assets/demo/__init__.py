"""`make demo`: generate a small sample library, index it through Dagster, show the catalog."""

from __future__ import annotations

import shutil

from .. import settings
from ..cli import main as dam
from .samples import age, make_cut_video, make_face_video, make_library, make_speech_video

# red appears in three shots (a person), green and blue in fewer (not yet people)
FACE_SHOTS = [
    [("red", (160, 128)), ("green", (448, 224))],
    [("red", (320, 192))],
    [("blue", (192, 96)), ("red", (448, 256))],
]
SPEECH = "Please send the footage to the editor tomorrow morning. The interview starts at nine."

QUERIES = {
    "What was indexed (probe)": (
        "SELECT f.path, p.media_kind AS kind, round(p.duration_s, 2) AS secs, p.video_codec,"
        " p.display_width AS w, p.display_height AS h, p.fps_avg AS fps, p.is_vfr AS vfr,"
        " p.audio_codec, p.rotation FROM media_files f JOIN probe p USING (checksum)"
        " ORDER BY f.path"
    ),
    "Streams": (
        "SELECT checksum[:12] AS checksum, stream_index AS idx, stream_type, codec, profile,"
        " pix_fmt, bit_depth, channel_layout, sample_rate FROM streams ORDER BY ALL"
    ),
    "Scenes": (
        "SELECT checksum[:12] AS checksum, scene_index AS scene, start_frame, end_frame,"
        " round(start_s, 2) AS start_s, round(end_s, 2) AS end_s, keyframe_path"
        " FROM scenes ORDER BY ALL"
    ),
    "Transcripts": (
        "SELECT t.checksum[:12] AS checksum, t.status, t.language, t.segments,"
        " round(t.speech_s, 1) AS speech_s, s.text FROM transcripts t"
        " LEFT JOIN transcript_segments s USING (checksum) ORDER BY ALL"
    ),
    "Posters (chosen by quality score)": (
        "SELECT checksum[:12] AS checksum, size_label, round(time_s, 2) AS at_s, width, height,"
        " score, path FROM thumbnails WHERE kind = 'poster' ORDER BY ALL"
    ),
}


def _offline_clip(data) -> None:
    """Without CLIP weights the embedding step would fail; the demo then uses a tiny
    random-weight model so every step runs. Its search results mean nothing."""
    model, pretrained = settings.clip_model()
    cached = list((data / "models" / "open_clip").glob(f"{model}-{pretrained}.*"))
    if settings.configured("DAM_CLIP_PRETRAINED") or cached:
        return
    from .tiny_clip import write_tiny_model

    config, weights = write_tiny_model(data / "models" / "demo-tiny-clip")
    settings.pin(DAM_CLIP_MODEL=config, DAM_CLIP_PRETRAINED=weights)
    print(
        "No CLIP weights here: this demo embeds frames with a tiny random-weight model, so"
        " semantic search runs but means nothing. README > Models explains where to put"
        " ViT-B-32 weights.",
        flush=True,
    )


def _offline_faces(data) -> None:
    """Without an insightface pack the faces step would fail; the demo then uses the tiny
    designed pack the tests use, which finds the coloured squares of the sample face video."""
    from ..models.faces import pack_dir

    model = settings.face_model()
    if settings.configured("DAM_FACE_MODEL") or any(
        pack_dir(model, data / "models").glob("*.onnx")
    ):
        return
    from .tiny_face_pack import write_tiny_face_pack

    pack = write_tiny_face_pack(data / "models" / "demo-tiny-faces")
    settings.pin(DAM_FACE_MODEL=pack)
    print(
        f"No insightface pack here ({model}): this demo finds the coloured-square faces of its"
        " sample video with a tiny test pack. README > Faces says how to install buffalo_l.",
        flush=True,
    )


def run() -> int:
    data = settings.data_dir()
    _offline_clip(data)
    _offline_faces(data)
    library = data / "sample_library"
    if not library.exists():
        print(f"Generating a sample library in {library} …", flush=True)
        make_library(library)
        age(make_cut_video(library / "clips" / "three_shots.mp4", cuts=[30, 75], frames=100))
        age(make_face_video(library / "clips" / "faces.mp4", FACE_SHOTS))
        if shutil.which("espeak-ng"):
            age(make_speech_video(library / "clips" / "voice_memo.mp4", SPEECH))
    code = dam(["ingest", str(library)])
    if code != 0:
        return code
    print()
    dam(["status"])
    for title, query in QUERIES.items():
        print(f"\n## {title}\n", flush=True)
        dam(["sql", query])
    if shutil.which("espeak-ng"):
        print('\n## dam search --text "footage tomorrow"\n', flush=True)
        dam(["search", "--text", "footage tomorrow"])
    print('\n## dam search "color bars" --limit 3\n', flush=True)
    dam(["search", "color bars", "--limit", "3"])
    print("\n## dam faces list\n", flush=True)
    dam(["faces", "list"])
    print(
        f"\nThe catalog is {data / 'catalog.duckdb'} (open it read-only from a notebook)."
        "\nRun `make dev` and open http://localhost:3000 to see the assets, runs and sensor;"
        " `.venv/bin/dam serve` and http://127.0.0.1:8765 for the library page."
    )
    return 0
