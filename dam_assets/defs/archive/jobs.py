"""Jobs `archive_media` and `verify_archive`: `dam archive` from the UI, a schedule or a sensor.

Thin: the work is dam_assets.library.archive's. A run whose copies did not all verify fails, after
every other copy was made and recorded, with the files and reasons in its failure.
"""

from dagster import Config, Failure, MetadataValue, OpExecutionContext, job, op
from pydantic import Field

from ...library.archive import ArchiveError, Outcome, archive_files, verify_copies
from ...storage.paths import safe_text
from ..resources import DamStorage


class ArchiveConfig(Config):
    dest: str = Field(description="The archive folder (it must exist: a mounted archive disk).")
    where: str = Field(
        default="",
        description="SQL condition on media_files and probe columns; empty: every present file.",
    )


class VerifyConfig(Config):
    dest: str = Field(
        default="", description="One archive folder; empty: every archive where it was last seen."
    )


def _problems(outcomes: list[Outcome], limit: int = 20) -> str:
    lines = [
        f"- {o.result}: {safe_text(o.destination or o.source)}: {safe_text(o.message)}"
        for o in outcomes[:limit]
    ]
    if len(outcomes) > limit:
        lines.append(f"- … and {len(outcomes) - limit} more (table `archive_copies`)")
    return "\n".join(lines)


@op(description="Copy originals to an archive folder, verified from disk; ledger archive_copies.")
def archive_originals(context: OpExecutionContext, config: ArchiveConfig, storage: DamStorage):
    try:
        report = archive_files(storage.store(), config.dest, config.where or None, context.log.info)
    except ArchiveError as exc:
        raise Failure(description=str(exc)) from exc
    counts = {r: report.count(r) for r in ("copied", "found", "already", "failed")}
    context.add_output_metadata(
        {**counts, "archive": str(report.root), "copied_gib": report.copied_bytes / 2**30}
    )
    if report.failed:
        raise Failure(
            description=f"{len(report.failed)} file(s) could not be archived",
            metadata={"failed": MetadataValue.md(_problems(report.failed)), **counts},
        )
    return counts


@op(description="Re-hash every recorded archive copy from disk; record what each is now.")
def verify_archive_copies(context: OpExecutionContext, config: VerifyConfig, storage: DamStorage):
    try:
        report = verify_copies(storage.store(), config.dest or None, context.log.info)
    except ArchiveError as exc:
        raise Failure(description=str(exc)) from exc
    counts = {r: report.count(r) for r in ("verified", "mismatch", "missing", "unreachable")}
    context.add_output_metadata({**counts, "unreachable_archives": len(report.unreachable)})
    if report.problems or report.unreachable:
        unreachable = "\n".join(f"- {safe_text(r)}: {w}" for r, w in report.unreachable.items())
        raise Failure(
            description=f"{len(report.problems)} archive copy(ies) did not verify",
            metadata={"problems": MetadataValue.md(f"{_problems(report.problems)}\n{unreachable}")},
        )
    return counts


@job(description="Verified archive copies of the originals (also `dam archive DEST`).")
def archive_media():
    archive_originals()


@job(description="Re-check every archive copy against its checksum (also `dam archive verify`).")
def verify_archive():
    verify_archive_copies()
