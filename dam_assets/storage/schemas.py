"""Every table the pipeline writes: its Arrow schema and how it is laid out in the lake.

One place for schemas keeps the Parquet files, the DuckDB views and the assets in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

Layout = Literal["units", "snapshot"]


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    # "units": one replaceable Parquet file per partition (or per key), compactable into
    # per-prefix segments. "snapshot": one file rewritten whole (small global tables).
    layout: Layout = "units"
    compactable: bool = True
    description: str = ""


_ts = pa.timestamp("us", tz="UTC")

PROBE = TableSpec(
    "probe",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("path", pa.string()),
            ("media_kind", pa.string()),
            ("container", pa.string()),
            ("container_long", pa.string()),
            ("duration_s", pa.float64()),
            ("size_bytes", pa.int64()),
            ("bit_rate", pa.int64()),
            ("start_time_s", pa.float64()),
            ("video_streams", pa.int32()),
            ("audio_streams", pa.int32()),
            ("subtitle_streams", pa.int32()),
            ("video_codec", pa.string()),
            ("audio_codec", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("display_width", pa.int32()),
            ("display_height", pa.int32()),
            ("rotation", pa.int32()),
            ("fps_avg", pa.float64()),
            ("fps_real", pa.float64()),
            ("is_vfr", pa.bool_()),
            ("bit_depth", pa.int32()),
            ("hdr", pa.bool_()),
            ("hdr_format", pa.string()),
            ("audio_channels", pa.int32()),
            ("audio_sample_rate", pa.int32()),
            ("creation_time", _ts),
            ("make", pa.string()),
            ("model", pa.string()),
            ("timecode", pa.string()),
            ("location", pa.string()),
            ("latitude", pa.float64()),
            ("longitude", pa.float64()),
            ("tags_json", pa.string()),
            ("probed_at", _ts),
        ]
    ),
    description="One row per file: container, duration, size and the headline stream facts.",
)

STREAMS = TableSpec(
    "streams",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("stream_index", pa.int32()),
            ("stream_type", pa.string()),
            ("codec", pa.string()),
            ("codec_long", pa.string()),
            ("profile", pa.string()),
            ("pix_fmt", pa.string()),
            ("bit_depth", pa.int32()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("sample_aspect_ratio", pa.string()),
            ("rotation", pa.int32()),
            ("fps_avg", pa.float64()),
            ("fps_real", pa.float64()),
            ("is_vfr", pa.bool_()),
            ("frames", pa.int64()),
            ("duration_s", pa.float64()),
            ("bit_rate", pa.int64()),
            ("color_primaries", pa.string()),
            ("color_transfer", pa.string()),
            ("color_space", pa.string()),
            ("color_range", pa.string()),
            ("hdr", pa.bool_()),
            ("channels", pa.int32()),
            ("channel_layout", pa.string()),
            ("sample_rate", pa.int32()),
            ("sample_fmt", pa.string()),
            ("language", pa.string()),
            ("title", pa.string()),
            ("is_default", pa.bool_()),
            ("is_forced", pa.bool_()),
            ("tags_json", pa.string()),
        ]
    ),
    description="One row per stream of every file (video, audio, subtitle, data/timecode).",
)

THUMBNAILS = TableSpec(
    "thumbnails",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("kind", pa.string()),  # poster | sprite | tile
            ("size_label", pa.string()),
            ("time_s", pa.float64()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("path", pa.string()),
            ("score", pa.float64()),
            ("tile_x", pa.int32()),
            ("tile_y", pa.int32()),
        ]
    ),
    description="Poster frames in several sizes, the scrub sprite sheet and one row per tile.",
)

SCENES = TableSpec(
    "scenes",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("scene_index", pa.int32()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("start_frame", pa.int64()),
            ("end_frame", pa.int64()),  # exclusive: the next scene's first frame
            ("duration_s", pa.float64()),
            ("fps", pa.float64()),
            ("detector", pa.string()),
            ("params_json", pa.string()),
            ("keyframe_path", pa.string()),
            ("keyframe_time_s", pa.float64()),
            ("keyframe_score", pa.float64()),
        ]
    ),
    description="PySceneDetect scenes per video with a best-quality keyframe each.",
)

SCENE_QUALITY = TableSpec(
    "scene_quality",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("scene_index", pa.int32()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("under_share", pa.float64()),  # share of pixels crushed to black (luma < 2%)
            ("over_share", pa.float64()),  # share of pixels blown to white (luma > 98%)
            ("brightness", pa.float64()),  # mean luma, 0 .. 1
            ("sharpness", pa.float64()),  # median variance of the Laplacian, analysis size
            ("noise", pa.float64()),  # median Immerkær noise sigma, 8-bit grey levels
            ("motion", pa.float64()),  # mean absolute frame difference, 0 .. 1
            ("camera_motion", pa.float64()),  # mean global shift, frame widths per frame
            ("shake", pa.float64()),  # mean frame-to-frame change of that shift
        ]
    ),
    description="Exposure, sharpness, noise and camera steadiness per scene, measured on the"
    " frames scene detection decodes (about 256 px wide); `dam search --sharp/--well-exposed/"
    "--steady` thresholds are in media/frame_stats.py.",
)

TIMELINE_FRAMES = TableSpec(
    "timeline_frames",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("second", pa.int32()),  # [second, second + 1) of media time
            ("frames", pa.int32()),
            ("brightness", pa.float64()),  # mean luma, 0 .. 1
            ("motion", pa.float64()),  # mean absolute frame difference, 0 .. 1
            ("dhash", pa.int64()),  # 64-bit dHash of the second's mean picture (signed)
            ("dhash_centre", pa.int64()),  # the same of its middle (10 % off each side)
        ]
    ),
    description="Per second of video: brightness, motion and a perceptual hash (from scenes);"
    " query the `timeline` view, which adds the audio.",
)

TIMELINE_AUDIO = TableSpec(
    "timeline_audio",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("second", pa.int32()),
            ("rms_dbfs", pa.float64()),  # loudness: RMS of the mono mix, dB below full scale
            ("peak_dbfs", pa.float64()),
            ("silent", pa.bool_()),  # RMS below SILENCE_DBFS (media/loudness.py)
        ]
    ),
    description="Per second of audio: loudness and silence (from transcripts' audio stream);"
    " query the `timeline` view, which adds the picture.",
)

NEAR_DUPLICATES = TableSpec(
    "near_duplicates",
    pa.schema(
        [
            ("group_id", pa.string()),  # the group's first checksum: pairs chain into groups
            ("checksum_a", pa.string()),  # the longer file
            ("checksum_b", pa.string()),
            # same | contained (b is a trimmed copy inside a) | overlap | cropped (b shows the
            # middle of a's picture)
            ("kind", pa.string()),
            ("score", pa.float64()),  # 1 - mean Hamming distance / 32: 1 identical
            ("offset_s", pa.float64()),  # b's time 0 is at a's offset_s
            ("overlap_s", pa.float64()),
            ("agree", pa.float64()),  # share of the overlap's seconds whose hashes agree
            ("found_at", _ts),
        ]
    ),
    layout="snapshot",
    compactable=False,
    description="Near-duplicate video pairs (re-encodes, resizes, remuxes, trimmed copies) from"
    " per-second dHashes, with the offset of one inside the other; `dam dupes` lists groups.",
)

TRANSCRIPTS = TableSpec(
    "transcripts",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("status", pa.string()),  # ok | no_speech | silent | no_audio
            ("language", pa.string()),
            ("language_probability", pa.float64()),
            ("duration_s", pa.float64()),
            ("speech_s", pa.float64()),
            ("segments", pa.int32()),
            ("words", pa.int32()),
            ("model", pa.string()),
            ("settings_json", pa.string()),
            ("realtime_factor", pa.float64()),
            ("vtt_path", pa.string()),
            ("srt_path", pa.string()),
            ("transcribed_at", _ts),  # when these segments were written (text index sync)
        ]
    ),
    description="One row per file: transcript status (also empty ones), language, model.",
)

TRANSCRIPT_SEGMENTS = TableSpec(
    "transcript_segments",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("segment_index", pa.int32()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("text", pa.string()),
            ("avg_logprob", pa.float64()),
            ("no_speech_prob", pa.float64()),
            ("compression_ratio", pa.float64()),
            ("language", pa.string()),
        ]
    ),
    description="faster-whisper segments with times.",
)

TRANSCRIPT_WORDS = TableSpec(
    "transcript_words",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("segment_index", pa.int32()),
            ("word_index", pa.int32()),
            ("word", pa.string()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("probability", pa.float64()),
        ]
    ),
    description="Word-level timings and confidences.",
)

CLIP_FRAMES = TableSpec(
    "clip_frames",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("time_s", pa.float64()),
            ("scene_index", pa.int32()),
            ("source", pa.string()),  # scene | interval | image
            ("thumbnail", pa.string()),
            ("model_id", pa.string()),
        ]
    ),
    description="Frames embedded with CLIP (vectors live in LanceDB table clip_frames).",
)

TAGS = TableSpec(
    "tags",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("scene_index", pa.int32()),
            ("time_s", pa.float64()),
            ("tag", pa.string()),
            ("score", pa.float64()),
            ("rank", pa.int32()),
            ("model_id", pa.string()),
        ]
    ),
    description="Zero-shot CLIP tags per scene (stills: per image), top few with probability.",
)

FACES = TableSpec(
    "faces",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("face_id", pa.string()),  # <checksum>:<n>, also the LanceDB row id
            ("time_s", pa.float64()),
            ("source", pa.string()),  # sample | scene | image
            ("x1", pa.float64()),  # bbox in the upright video's pixels
            ("y1", pa.float64()),
            ("x2", pa.float64()),
            ("y2", pa.float64()),
            ("det_score", pa.float64()),
            ("blur", pa.float64()),  # variance of the Laplacian of the aligned crop
            ("landmarks", pa.list_(pa.float32())),  # 5 × (x, y): eyes, nose, mouth corners
            ("track_id", pa.string()),  # null: too short to be a track
            ("crop", pa.string()),
            ("model_id", pa.string()),
        ]
    ),
    description="Every face found (insightface), with its track; vectors in LanceDB `faces`.",
)

FACE_TRACKS = TableSpec(
    "face_tracks",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("track_id", pa.string()),  # <checksum>:t<n>
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("detections", pa.int32()),
            ("best_crop", pa.string()),
            ("best_score", pa.float64()),
            ("model_id", pa.string()),
        ]
    ),
    description="One face followed through a shot: a time range. Mean vector in LanceDB"
    " `face_tracks`.",
)

FACE_CLUSTERS = TableSpec(
    "face_clusters",
    pa.schema(
        [
            ("person_id", pa.int64()),
            ("track_id", pa.string()),
            ("checksum", pa.string()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("distance", pa.float64()),  # cosine distance to the person's centre
            ("source", pa.string()),  # auto | user (label or merge: kept by re-clusters)
        ]
    ),
    layout="snapshot",
    compactable=False,
    description="Which person each face track belongs to (global; stable person ids).",
)

PEOPLE = TableSpec(
    "people",
    pa.schema(
        [
            ("person_id", pa.int64()),
            ("name", pa.string()),
            ("faces", pa.int32()),  # tracks (appearances)
            ("detections", pa.int64()),
            ("files", pa.int32()),
            ("first_seen", _ts),  # earliest / latest capture time of the files
            ("last_seen", _ts),
            ("crop", pa.string()),
        ]
    ),
    layout="snapshot",
    compactable=False,
    description="People found across the library; names given with `dam faces label`.",
)

CAPTURE_SEGMENTS = TableSpec(
    "capture_segments",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("path", pa.string()),
            ("rig", pa.string()),
            ("camera", pa.string()),
            ("role", pa.string()),
            ("capture_start", _ts),
            ("start_source", pa.string()),  # timecode | sidecar | creation_time | filename | mtime
            ("timecode", pa.string()),
            ("timecode_fps", pa.float64()),
            ("drop_frame", pa.bool_()),
            ("duration_s", pa.float64()),
            ("has_audio", pa.bool_()),
            ("audio_sample_rate", pa.int32()),
            ("video_codec", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("fps", pa.float64()),
            ("chapter_group", pa.string()),
            ("chapter_index", pa.int32()),
        ]
    ),
    description="Files of a camera rig: rig, camera, role, capture start and where it came from.",
)

CAPTURE_SESSIONS = TableSpec(
    "capture_sessions",
    pa.schema(
        [
            ("session_id", pa.string()),
            ("rig", pa.string()),
            ("start", _ts),
            ("end", _ts),
            ("segments", pa.int32()),
            ("cameras", pa.string()),
            ("hero_checksum", pa.string()),
            ("fps", pa.float64()),
            ("export_json", pa.string()),
            ("export_csv", pa.string()),
        ]
    ),
    layout="snapshot",
    compactable=False,
    description="Overlapping segments of one rig grouped into sessions, with their exports.",
)

CAPTURE_SYNC = TableSpec(
    "capture_sync",
    pa.schema(
        [
            ("session_id", pa.string()),
            ("checksum", pa.string()),
            ("camera", pa.string()),
            ("role", pa.string()),
            ("take", pa.string()),
            ("offset_s", pa.float64()),  # this file's t=0 on the hero file's timeline
            ("offset_frames", pa.float64()),
            ("method", pa.string()),  # audio | timecode | times (…) | reference | none
            ("confidence", pa.float64()),
            ("drift_ppm", pa.float64()),
            ("consistent", pa.bool_()),
            ("note", pa.string()),
        ]
    ),
    layout="snapshot",
    compactable=False,
    description="Per segment: offset to the session's hero camera, how it was found, drift.",
)

MEDIA_FILES = TableSpec(
    "media_files",
    pa.schema(
        [
            ("path", pa.string()),
            ("checksum", pa.string()),
            ("size_bytes", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("inode", pa.int64()),
            ("root", pa.string()),
            ("media_kind", pa.string()),
            ("first_seen", _ts),
            ("last_seen", _ts),
            ("missing", pa.bool_()),  # this path does not hold this content now
            ("missing_since", _ts),  # gone, or replaced by other content, since
            ("replaced", pa.bool_()),  # the path holds other content now
            ("content_present", pa.bool_()),  # some path still holds this content
            ("versions", pa.int32()),  # times this path held this content
            ("path_bytes", pa.binary()),  # the real name when it is not valid UTF-8
        ]
    ),
    layout="snapshot",
    compactable=False,
    description="Every (path, checksum) ever seen: a path that later holds other content keeps"
    " its old row, marked missing and replaced; deleted files are flagged, not dropped.",
)

FILE_VERSIONS = TableSpec(
    "file_versions",
    pa.schema(
        [
            ("path", pa.string()),
            ("version", pa.int32()),  # 1, 2, … in the order the path held its contents
            ("checksum", pa.string()),
            ("previous_checksum", pa.string()),  # what the path held before this version
            ("size_bytes", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("first_seen", _ts),
            ("last_seen", _ts),
            ("current", pa.bool_()),  # the path's latest version
            ("present", pa.bool_()),  # current and the path is there
            ("gone_since", _ts),  # replaced or missing since
            ("content_present", pa.bool_()),  # some path still holds this content
            ("rig", pa.string()),  # `dam ingest --rig`: this content at this path is a rig's
            ("rig_root", pa.string()),  # ... laid out as under the rig root, below this folder
            ("path_bytes", pa.binary()),
        ]
    ),
    layout="snapshot",
    compactable=False,
    description="Per path, each content it held in order: re-exports and reused camera-card"
    " names are versions 1, 2, … of the same path.",
)

INGEST_ERRORS = TableSpec(
    "ingest_errors",
    pa.schema(
        [
            ("path", pa.string()),
            ("checksum", pa.string()),
            ("stage", pa.string()),
            ("error_type", pa.string()),
            ("message", pa.string()),
            ("occurred_at", _ts),
        ]
    ),
    compactable=False,
    description="Files that could not be indexed at some stage, with a message for people.",
)

ASSET_SKIPS = TableSpec(
    "asset_skips",
    pa.schema(
        [
            ("stage", pa.string()),  # the asset that did nothing
            ("model", pa.string()),  # the model it needs
            ("message", pa.string()),  # what to install, and where
            ("since", _ts),
        ]
    ),
    compactable=False,
    description="Assets skipped because their model is not installed, and how to install it;"
    " their partitions stay missing until it is.",
)

ARCHIVE_COPIES = TableSpec(
    "archive_copies",
    pa.schema(
        [
            ("checksum", pa.string()),
            ("archive_id", pa.string()),  # from DEST/.dam-archive/archive.json: the disk itself
            ("archive_root", pa.string()),  # where that archive was mounted when last used
            ("destination", pa.string()),  # the copy: archive_root/relative_path
            ("relative_path", pa.string()),
            ("source_path", pa.string()),  # the original it was copied from (only ever read)
            ("size_bytes", pa.int64()),
            ("status", pa.string()),  # verified | mismatch | missing | unreadable | failed
            ("message", pa.string()),  # what went wrong and what to do (null when verified)
            ("copied_at", _ts),  # null: identical content was already there, not copied again
            ("verified_at", _ts),  # the last time the copy's BLAKE3 matched, read from disk
            ("checked_at", _ts),  # the last check, whatever it found
        ]
    ),
    description="Verified archive copies (`dam archive`): one row per content and archive.",
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        PROBE,
        STREAMS,
        THUMBNAILS,
        SCENES,
        SCENE_QUALITY,
        TIMELINE_FRAMES,
        TIMELINE_AUDIO,
        NEAR_DUPLICATES,
        TRANSCRIPTS,
        TRANSCRIPT_SEGMENTS,
        TRANSCRIPT_WORDS,
        CLIP_FRAMES,
        TAGS,
        FACES,
        FACE_TRACKS,
        FACE_CLUSTERS,
        PEOPLE,
        CAPTURE_SEGMENTS,
        CAPTURE_SESSIONS,
        CAPTURE_SYNC,
        MEDIA_FILES,
        FILE_VERSIONS,
        INGEST_ERRORS,
        ASSET_SKIPS,
        ARCHIVE_COPIES,
    )
}


@dataclass(frozen=True)
class ViewSpec:
    """A catalog view over other tables' views, for what people query as one table."""

    name: str
    sql: str
    tables: tuple[str, ...]
    description: str = ""


TIMELINE = ViewSpec(
    "timeline",
    "SELECT checksum, second, f.frames, f.brightness, f.motion, f.dhash,"
    " a.rms_dbfs, a.peak_dbfs, a.silent"
    " FROM timeline_frames f FULL OUTER JOIN timeline_audio a USING (checksum, second)",
    ("timeline_frames", "timeline_audio"),
    "One row per (checksum, second): brightness, motion and hash from the picture, loudness"
    " and silence from the sound; a side is NULL where the file lacks it or it is not made.",
)

VIEWS: dict[str, ViewSpec] = {view.name: view for view in (TIMELINE,)}


def rows_to_table(spec: TableSpec, rows: list[dict]) -> pa.Table:
    """Rows (dicts) to an Arrow table with exactly the spec's columns; unknown keys are a bug."""
    names = set(spec.schema.names)
    for row in rows:
        extra = set(row) - names
        if extra:
            raise KeyError(f"{spec.name}: unknown columns {sorted(extra)}")
    return pa.Table.from_pylist(rows, schema=spec.schema)
