"""The engine's writing side: each item's one result, what the state keeps of it, and every
stage's bar counted once, whichever way the item ends."""

from __future__ import annotations

import logging

from bulksync.engine._options import EngineOptions
from bulksync.engine._stages import ItemSink, StageCounters
from bulksync.spi._connector import Failed, Job, Skipped, Stage
from bulksync.spi._errors import ErrorInfo
from bulksync.spi._records import AssetRecord, BadRecord, Kind, LinkRecord, Record
from bulksync.spi._redact import redacted_excerpt
from bulksync.store.results import ItemResult, ResultSink, RunStats, Status

log = logging.getLogger("bulksync.engine._engine")

__all__ = ["Finisher"]


class Finisher(ItemSink):
    """Where jobs leave the engine (its :class:`ItemSink` side), set up by the engine."""

    options: EngineOptions
    stats: RunStats
    writer: ResultSink
    _stages: dict[Kind, list[tuple[Stage, StageCounters]]]
    _live: set[Job]  # read from the input, result not yet written
    _failed_assets: dict[str, str]  # asset id -> why, for dependent links

    def _finish_duplicate(self, record: AssetRecord | LinkRecord, first: int) -> None:
        self.stats.invalid += 1
        message = f"{record.origin}: duplicate of line {first} (the same item on the target)"
        error = ErrorInfo("DuplicateItem", message)
        self._count_unreached(record.kind, None, "failed")
        self._write(ItemResult(record.kind, record.origin, record.key, "failed", error=error))

    def succeed(self, job: Job) -> None:
        state = self.options.state
        if state is not None and job.digest is not None:
            action = job.action
            result = f"succeeded ({action})" if action else "succeeded"
            state.confirm(job.record.kind, job.record.key, job.digest, job.remote_id, result)
        self._finish(job, "succeeded", remote_id=job.remote_id)

    def end(self, job: Job, outcome: Failed | Skipped, step: str) -> None:
        if isinstance(outcome, Skipped):
            if self.options.state is not None and job.intent is not None:
                self.options.state.settle(job.record.kind, job.record.key)
            self._finish(job, "skipped", reason=outcome.reason)
            return
        job.extra.update(outcome.extra)
        self._finish(job, "failed", error=outcome.error, step=step)

    def _finish(
        self,
        job: Job,
        status: Status,
        *,
        remote_id: str | None = None,
        error: ErrorInfo | None = None,
        step: str | None = None,
        reason: str | None = None,
    ) -> None:
        record = job.record
        if record.kind == "asset" and status == "failed":
            where = f"line {record.origin.line}, {step}" if step else f"line {record.origin.line}"
            self._failed_assets[record.key] = f"{where}: {error.message if error else status}"
        result = ItemResult(
            kind=record.kind,
            origin=record.origin,
            key=record.key,
            status=status,
            remote_id=remote_id,
            error=error,
            attempts=job.attempts,
            step=step if record.kind == "asset" and status == "failed" else None,
            reason=reason,
            extra=job.extra if job.action is None else {**job.extra, "action": job.action},
            started_at=job.started_at,
        )
        self._live.discard(job)
        self._count_unreached(record.kind, job, status)
        state = self.options.state
        try:
            if status == "failed" and state is not None:
                what = f"{error.type}: {error.message}" if error else "failed"
                where = f" at {step}" if step else ""
                # Settled only when the push surely did not happen: otherwise the next run looks
                # the item up before creating it.
                unsure = (
                    job.maybe_applied
                    or job.resumed
                    or (error and error.type in ("Interrupted", "TargetUnreachable"))
                    or (error and error.type == "QuotaExhausted" and job.attempts > 0)
                )
                state.failed(
                    record.kind,
                    record.key,
                    redacted_excerpt(f"failed{where}: {what}", 500),
                    absent=job.absent_on_target,
                    settled=job.intent is None or not unsure,
                    refused=bool(error and error.http_status and 400 <= error.http_status < 500),
                )
        finally:
            # The line's result even when the state's write fails (its database gone): the
            # error stops the run, the line is not lost.
            self._write(result)

    def _finish_internal(self, record: Record | BadRecord, exc: Exception) -> None:
        """A bug met while admitting one line: that line's failed result, and nothing else."""
        log.debug("admitting %s failed", record.origin, exc_info=True)
        for job in [j for j in self._live if j.record is record]:
            self._live.discard(job)  # its one result is the one written here
        try:
            key: str | None = record.key
        except Exception:
            key = None  # the key itself could not be computed
        what = redacted_excerpt(f"{type(exc).__name__}: {exc}", 500)
        error = ErrorInfo("InternalError", f"{record.origin}: {what}")
        self.stats.invalid += 1
        if record.kind == "asset" and key:
            self._failed_assets[key] = f"line {record.origin.line}: {what}"
        self._count_unreached(record.kind, None, "failed")
        self._write(ItemResult(record.kind, record.origin, key, "failed", error=error))

    def _finish_bad(self, record: BadRecord) -> None:
        self.stats.invalid += 1
        error = ErrorInfo(record.error_type, f"{record.origin}: {record.reason}")
        if record.kind == "asset" and record.key:
            self._failed_assets[record.key] = f"line {record.origin.line}: {record.reason}"
        self._count_unreached(record.kind, None, "failed")
        self._write(ItemResult(record.kind, record.origin, record.key, "failed", error=error))

    def _count_unreached(self, kind: Kind, job: Job | None, status: Status) -> None:
        """Count an item at every stage of its kind that did not count it, so that each stage's
        bar reaches its total: the first one as the item ended (a bad line fails at the first
        stage), the later ones as skipped, or as not applicable when the stage would have had
        nothing to do for it (an unchanged asset with no file, at the upload)."""
        stages = self._stages.get(kind, ())
        first = True
        for stage, counters in stages[job.passed if job is not None else 0 :]:
            if job is not None and not _applies(stage, job):
                counters.not_applicable += 1
            elif first and status == "failed":
                counters.failed += 1
            else:
                counters.skipped += 1
            first = False

    def _write(self, result: ItemResult) -> None:
        self.writer.write(result)
        self.stats.count(result)


def _applies(stage: Stage, job: Job) -> bool:
    try:
        return stage.applies(job)
    except Exception:
        return True  # the stage would have failed the item: it counts in its total
