"""Where things live. Resolved at call time from the environment, never at import time."""

from __future__ import annotations

import os
from pathlib import Path

# Models used when the environment names none (the settings dataclasses default to these too).
CLIP_MODEL, CLIP_PRETRAINED = "ViT-B-32", "laion2b_s34b_b79k"
WHISPER_MODEL = "tiny.en"
FACE_MODEL = "buffalo_l"

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The folder holding `dagster.yaml`: the nearest one above the working directory, else the
    checkout this package was installed from (editable installs), else the working directory."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "dagster.yaml").is_file() and (folder / "workspace.yaml").is_file():
            return folder
    checkout = PACKAGE_DIR.parent
    if (checkout / "dagster.yaml").is_file():
        return checkout
    return cwd


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """`DAM_DATA_DIR`, default `<project root>/data`."""
    value = override or os.environ.get("DAM_DATA_DIR")
    path = Path(value).expanduser() if value else project_root() / "data"
    return path.resolve()


def default_inbox() -> Path:
    """The watched folder when none is configured: `<project root>/inbox`, beside the data
    folder and never inside it (the data folder holds only what the pipeline writes)."""
    return project_root() / "inbox"


def watch_roots(override: str | None = None) -> list[Path]:
    """`DAM_WATCH_ROOTS`: folders separated by `os.pathsep`, default the inbox (plus
    `<data dir>/inbox`, the default of earlier versions, while it exists)."""
    value = override if override is not None else os.environ.get("DAM_WATCH_ROOTS", "")
    roots = [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]
    if roots:
        return roots
    legacy = data_dir() / "inbox"
    return [default_inbox()] + ([legacy] if legacy.is_dir() else [])


def is_worker() -> bool:
    """`DAM_ROLE=worker`: this machine only executes steps (Celery, Kubernetes) and shares
    `DAM_DATA_DIR` with the host over NFS/SMB. It writes Parquet, LanceDB and derived files
    only, and refuses to open the host's SQLite files (registry, people, text index), which
    are not safe on a shared folder. Default `host`."""
    role = os.environ.get("DAM_ROLE", "").strip().lower() or "host"
    if role not in ("host", "worker"):
        raise ValueError(f"DAM_ROLE must be 'host' or 'worker', not {role!r}")
    return role == "worker"


def whisper_model() -> str:
    """`DAM_WHISPER_MODEL`: a faster-whisper model name or a CTranslate2 folder (tiny.en)."""
    return os.environ.get("DAM_WHISPER_MODEL", "").strip() or WHISPER_MODEL


def scene_detector_env() -> dict[str, str]:
    """`DAM_SCENE_DETECTOR` (content|adaptive|hash), `DAM_SCENE_THRESHOLD`, `DAM_SCENE_MIN_LEN`."""
    keys = {
        "detector": "DAM_SCENE_DETECTOR",
        "threshold": "DAM_SCENE_THRESHOLD",
        "min_scene_len": "DAM_SCENE_MIN_LEN",
    }
    return {k: os.environ[v] for k, v in keys.items() if os.environ.get(v, "").strip()}


def clip_model() -> tuple[str, str]:
    """`DAM_CLIP_MODEL` (open_clip architecture or a model-config JSON) and
    `DAM_CLIP_PRETRAINED` (a pretrained tag or a local checkpoint file)."""
    model = os.environ.get("DAM_CLIP_MODEL", "").strip() or CLIP_MODEL
    pretrained = os.environ.get("DAM_CLIP_PRETRAINED", "").strip() or CLIP_PRETRAINED
    return model, pretrained


def face_model() -> str:
    """`DAM_FACE_MODEL`: an insightface pack name (buffalo_l, buffalo_s, …), a folder of ONNX
    files, or `none` to skip faces."""
    return os.environ.get("DAM_FACE_MODEL", "").strip() or FACE_MODEL


def instance_postgres_address() -> tuple[str, int] | None:
    """(host, port) of the PostgreSQL server the Dagster instance in $DAGSTER_HOME uses, or
    None when it uses SQLite (or the address cannot be told from dagster.yaml)."""
    from urllib.parse import urlsplit

    import yaml

    home = os.environ.get("DAGSTER_HOME")
    config_file = Path(home) / "dagster.yaml" if home else None
    if not config_file or not config_file.is_file():
        return None
    try:
        config = yaml.safe_load(config_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    storage = config.get("storage") or config.get("run_storage") or {}
    postgres = storage.get("postgres") or (storage.get("config") or {})
    if not isinstance(postgres, dict):
        return None
    url = postgres.get("postgres_url")
    if isinstance(url, dict) and url.get("env"):
        url = os.environ.get(url["env"], "")
    if isinstance(url, str) and url:
        parts = urlsplit(url)
        return (parts.hostname or "localhost", parts.port or 5432)
    db = postgres.get("postgres_db")
    if isinstance(db, dict):
        host = db.get("hostname")
        host = os.environ.get(host["env"], "") if isinstance(host, dict) else host
        return (str(host or "localhost"), int(db.get("port") or 5432))
    return None


def missing_retention_days() -> float:
    """`DAM_MISSING_RETENTION_DAYS` (default 30): how long content whose every copy is missing
    is still retried by the nightly run and `dam ingest`."""
    return float(os.environ.get("DAM_MISSING_RETENTION_DAYS", "").strip() or 30)


def read_timeout() -> tuple[float, float]:
    """(`DAM_READ_TIMEOUT_S`, default 300; `DAM_READ_TIMEOUT_PER_MEDIA_S`, default 2): a stage
    gives up on a file that stops making progress after base + per-media-second × duration."""
    base = os.environ.get("DAM_READ_TIMEOUT_S", "").strip() or "300"
    per_media_s = os.environ.get("DAM_READ_TIMEOUT_PER_MEDIA_S", "").strip() or "2"
    return float(base), float(per_media_s)


def timezone() -> str:
    """`DAM_TIMEZONE`, else the machine's zone (so the default 03:00 is local time)."""
    zone = os.environ.get("DAM_TIMEZONE") or os.environ.get("TZ")
    if not zone and Path("/etc/timezone").is_file():
        zone = Path("/etc/timezone").read_text().strip()
    return zone or "UTC"


def cron(name: str, default: str) -> str:
    """When a nightly job runs: `DAM_NIGHTLY_CRON`, `DAM_RECLUSTER_CRON`, `DAM_COMPACTION_CRON`,
    `DAM_CHECKS_CRON`, `DAM_PROXIES_CRON` (cron syntax, in `timezone()`)."""
    return os.environ.get(f"DAM_{name}_CRON", "").strip() or default


def rigs_file() -> Path:
    """`DAM_RIGS`: the camera rigs file, default `<project root>/rigs.yaml`."""
    value = os.environ.get("DAM_RIGS", "").strip()
    return Path(value).expanduser() if value else project_root() / "rigs.yaml"


def hub_offline() -> bool:
    """`HF_HUB_OFFLINE`: never try to download model weights."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def watch_roots_configured() -> bool:
    """Whether watched folders were given (else the default inbox is ours to create)."""
    return bool(os.environ.get("DAM_WATCH_ROOTS", "").strip())


def dagster_home() -> Path:
    """`DAGSTER_HOME`, default the project root (its dagster.yaml is the repo's)."""
    return Path(os.environ.get("DAGSTER_HOME") or project_root()).expanduser()


def configured(name: str) -> bool:
    """Whether a person set this variable (a default is not a choice, a value is)."""
    return bool(os.environ.get(name, "").strip())


def pin(**values: str | os.PathLike[str]) -> None:
    """Set variables for this process and the runs it starts (they read them again)."""
    for name, value in values.items():
        os.environ[name] = str(value)


def dagster_url() -> str:
    """`DAM_DAGSTER_URL`: where the Dagster web UI answers, for the library page's links to
    runs and backfills (default http://localhost:3000, what `make dev` serves)."""
    return (os.environ.get("DAM_DAGSTER_URL", "").strip() or "http://localhost:3000").rstrip("/")
