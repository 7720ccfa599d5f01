"""Task writes: one statement on PostgreSQL, one transaction on SQLite.

Every write does the same steps in the same order: bump the owner's change counter (which holds
only if the token is not revoked, the target exists at an expected version, and no record of
the request's idempotency key is alive), change the task rows stamped with the new `seq` as
their version, keep `task_tags` in step, create the next occurrence of a recurring task just
completed, append the change-log entries and store the idempotency record. On PostgreSQL these
are the data-modifying CTEs of a single statement in autocommit: one round trip, atomic, with a
NOTIFY for live listeners delivered when it commits. SQLite, which has no data-modifying CTEs
(and where round trips cost nothing), runs the same steps as statements of one `BEGIN IMMEDIATE`
transaction. Statements are built once per shape; each request only binds values.

A write returns a `TaskWrite`, or raises `TokenRevoked`, `TaskNotFound`, `VersionMismatch`,
`IdempotencyKeyReused` or `IdempotencyKeyInFlight`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Insert,
    Integer,
    Select,
    Sequence,
    and_,
    bindparam,
    case,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    not_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from auth.scope import OwnerScope, TokenRevoked, not_revoked, owner_id
from database.types import utcnow
from db import Database, insert_for
from models import (
    TASK_COLUMNS,
    ChangeKind,
    change_counters,
    idempotency_records,
    task_changes,
    tasks,
)
from tasks.changelog import bump_counter, log_entries, log_values
from tasks.completion import (
    Completion,
    completion_values,
    now_param,
    spawn_condition,
    spawn_next_occurrence,
)
from tasks.errors import TaskNotFound, VersionMismatch
from tasks.idempotency import (
    IdempotencyKey,
    Recorded,
    answered_task,
    check_fingerprint,
    find_record,
    forget_expired,
    is_key_conflict,
    no_live_record,
    prior_fingerprint,
    record_of,
)
from tasks.recurrence import next_due_at_sql
from tasks.tags import add_tags, drop_tags_missing_from, replace_tags, tag_rows_of

# The fields a client sets (TaskCreate / TaskUpdate), bound as `field_<name>`.
FIELDS = ("title", "description", "priority", "tags", "due_at", "recurrence")
TASK_ID_SEQUENCE = Sequence("tasks_id_seq")
CREATED, UPDATED, DELETED = 201, 200, 204
MAX_ATTEMPTS = 5
DIVISION_BY_ZERO = "22012"


@dataclass(frozen=True, slots=True)
class TaskWrite:
    """What a write did: the task after it (as it was, for a deletion), the next occurrence it
    created, how many tasks a bulk deletion removed, and whether this is the replay of the
    answer to an earlier request with the same idempotency key."""

    task: Row[Any] | None = None
    successor_id: int | None = None
    deleted_count: int | None = None
    replayed: bool = False


# --- shared pieces ------------------------------------------------------------------------


def _field(name: str) -> Any:
    return bindparam(f"field_{name}", type_=tasks.c[name].type)


def _field_params(values: dict[str, Any]) -> dict[str, Any]:
    return {f"field_{name}": value for name, value in values.items()}


def _is_target() -> list[ColumnElement[bool]]:
    return [tasks.c.id == bindparam("task_id"), tasks.c.user_id == owner_id()]


def _version_expected() -> ColumnElement[bool]:
    return tasks.c.version.in_(bindparam("expected_versions", expanding=True))


def _target_conditions(expects_version: bool) -> list[ColumnElement[bool]]:
    conditions = _is_target()
    if expects_version:
        conditions.append(_version_expected())
    return conditions


def _precondition(
    condition: ColumnElement[bool] | None, idempotent: bool
) -> ColumnElement[bool] | None:
    if not idempotent:
        return condition
    return no_live_record() if condition is None else and_(condition, no_live_record())


def _explanation(with_target: bool) -> Select[Any]:
    """Why a write found nothing to do: `allowed` (token not revoked) and, for one task, its
    `current_version` (None: no such task for this owner)."""
    columns: list[Any] = [not_revoked().label("allowed")]
    if with_target:
        version = select(tasks.c.version).where(*_is_target()).scalar_subquery()
        columns.append(version.label("current_version"))
    return select(*columns)


EXPLAIN_TOKEN = _explanation(with_target=False)
EXPLAIN_TASK = _explanation(with_target=True)


def _raise_for(explanation: Any, expected_versions: tuple[int, ...] | None) -> None:
    """Raise what an explanation says; return when it shows nothing wrong."""
    if not explanation.allowed:
        raise TokenRevoked
    if "current_version" not in explanation._fields:
        return
    current = explanation.current_version
    if current is None:
        raise TaskNotFound
    if expected_versions is not None and current not in expected_versions:
        raise VersionMismatch(current)


async def _explain_missing(
    connection: AsyncConnection,
    params: dict[str, Any],
    *,
    with_target: bool,
    expected_versions: tuple[int, ...] | None = None,
) -> None:
    """The rare path: a fresh look at why nothing was written, raised as the matching error.
    When everything looks in order again, a concurrent account deletion closed the counter."""
    statement = EXPLAIN_TASK if with_target else EXPLAIN_TOKEN
    _raise_for((await connection.execute(statement, params)).one(), expected_versions)
    raise TokenRevoked


def _counter_seq(counter: CTE) -> ColumnElement[Any]:
    """The write's `seq`, inside the statement."""
    return select(counter.c.seq).scalar_subquery()


def _bumped(counter: CTE) -> ColumnElement[bool]:
    """Whether the counter was bumped: the guard and the precondition held."""
    return exists(select(counter.c.seq))


def _assemble(
    written: CTE,
    side_effects: list[Any],
    *,
    with_target: bool,
    record: Insert | None,
    extra_columns: Iterable[Any] = (),
) -> Select[Any]:
    """The main SELECT of a PostgreSQL write: always one row, the explanation joined to the
    written row (NULLs when nothing was written), so even a 401/404/412 is one round trip;
    with an idempotency key, also the fingerprint of a live record of it."""
    explanation = _explanation(with_target).subquery("explanation")
    main = select(explanation, *written.c).select_from(explanation.outerjoin(written, true()))
    main = main.add_columns(*extra_columns)
    if record is not None:
        main = main.add_columns(prior_fingerprint().label("prior_fingerprint"))
        side_effects = [*side_effects, record.cte("recorded")]
    return main.add_cte(*side_effects)


def _fresh_snapshot(counter: CTE) -> ColumnElement[Any]:
    """1, or a division by zero that aborts the statement when another write of this owner
    committed after the statement's snapshot was taken (while it waited for the counter).

    Every part of a write that acts on the rows it changes sees them as they are after the
    wait (PostgreSQL re-reads a row it updates); a part that must see *other* rows as they
    are now (the tag rows an update replaces) relies on this check, and the write is retried
    with a fresh snapshot (`is_stale_snapshot`).
    """
    seen = select(change_counters.c.seq).where(change_counters.c.user_id == owner_id())
    fresh = counter.c.seq == func.coalesce(seen.scalar_subquery(), 0) + 1
    return select(literal(1) / cast(fresh, Integer)).select_from(counter).scalar_subquery()


def is_stale_snapshot(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) == DIVISION_BY_ZERO


def _logged(rows: CTE, kind: ChangeKind, seq: ColumnElement[Any] | None = None) -> Insert:
    return log_entries(rows, kind, seq)


LOCK_COUNTER = (
    select(change_counters.c.seq).where(change_counters.c.user_id == owner_id()).with_for_update()
)


async def _execute_write(
    db: Database, statement: Select[Any], params: dict[str, Any], *, holding_counter: bool
) -> Row[Any]:
    """One round trip; or, for a write that lost a race for the owner's counter
    (`_fresh_snapshot`), the counter locked first in the same transaction: no other write of
    this owner can then commit between this statement's snapshot and its own bump, so it
    cannot lose again, however many writes of the owner queue at once."""
    if not holding_counter:
        async with db.statement() as connection:
            return (await connection.execute(statement, params)).one()
    async with db.transaction() as connection:
        await connection.execute(LOCK_COUNTER, {"owner_id": params["owner_id"]})
        return (await connection.execute(statement, params)).one()


async def _run_statement(
    db: Database,
    statement: Select[Any],
    params: dict[str, Any],
    idempotency: IdempotencyKey | None,
) -> Row[Any] | Recorded:
    """Run one PostgreSQL write; a record of its idempotency key (found before writing, or
    stored first by a racing request) comes back instead of its row."""
    attempt = 0
    holding_counter = False
    while True:
        attempt += 1
        try:
            row = await _execute_write(db, statement, params, holding_counter=holding_counter)
        except DBAPIError as error:
            if is_stale_snapshot(error) and attempt < MAX_ATTEMPTS:
                holding_counter = True
                continue
            if not isinstance(error, IntegrityError):
                raise
            if idempotency is None or not is_key_conflict(error):
                raise
            if idempotency is None or not is_key_conflict(error):
                raise
            async with db.statement() as connection:
                record = await find_record(connection, params)
                expired = record is None and await forget_expired(connection, params)
            if record is not None:
                return record
            if expired and attempt < MAX_ATTEMPTS:
                continue
            raise
        if idempotency is not None and row.allowed and row.prior_fingerprint is not None:
            async with db.statement() as connection:
                record = await find_record(connection, params)
            if record is not None:
                return record
            if attempt < MAX_ATTEMPTS:
                continue
        return row


async def _replay(
    request: _Request, record: Recorded, connection: AsyncConnection | None = None
) -> TaskWrite:
    """The first answer, for a retry with the same key and the same request."""
    assert request.idempotency is not None
    check_fingerprint(record, request.idempotency)
    if connection is None:
        async with request.db.read() as reader:
            task = await answered_task(reader, request.params, record)
    else:
        task = await answered_task(connection, request.params, record)
    return TaskWrite(task, record.successor_id, record.deleted_count, replayed=True)


async def _sqlite_prelude(
    connection: AsyncConnection, params: dict[str, Any], idempotency: IdempotencyKey | None
) -> Recorded | None:
    """SQLite, inside the write's transaction: refuse a revoked token, find a live record of
    the key (to replay) or forget an expired one."""
    if idempotency is None:
        return None
    if not (await connection.execute(EXPLAIN_TOKEN, params)).scalar():
        raise TokenRevoked
    record = await find_record(connection, params)
    if record is None:
        await forget_expired(connection, params)
    return record


async def _sqlite_record(
    connection: AsyncConnection,
    params: dict[str, Any],
    idempotency: IdempotencyKey | None,
    status: int,
    write: TaskWrite,
) -> None:
    if idempotency is None:
        return
    task = write.task
    await connection.execute(
        idempotency_records.insert().values(
            scope=idempotency.scope,
            key=idempotency.key,
            fingerprint=idempotency.fingerprint,
            status=status,
            task_id=None if task is None else task.id,
            version=None if task is None else _answer_version(task, status),
            successor_id=write.successor_id,
            deleted_count=write.deleted_count,
            created_at=params["now"],
            expires_at=params["idempotency_expires_at"],
        )
    )


def _answer_version(task: Row[Any], status: int) -> int:
    """The log position of the answer's task (a deletion's entry is at the write's seq)."""
    return task.deleted_at_seq if status == DELETED else task.version


async def _log(
    connection: AsyncConnection, rows: Iterable[Any], kind: ChangeKind, params: dict[str, Any]
) -> None:
    entries = [log_values(row, kind, params["seq"], params["now"]) for row in rows]
    if entries:
        await connection.execute(task_changes.insert(), entries)


@dataclass(frozen=True, slots=True)
class _Request:
    """One write's inputs, as both skeletons below need them."""

    db: Database
    scope: OwnerScope
    params: dict[str, Any]
    idempotency: IdempotencyKey | None
    expected_versions: tuple[int, ...] | None = None
    with_target: bool = True

    @classmethod
    def of(
        cls,
        db: Database,
        scope: OwnerScope,
        idempotency: IdempotencyKey | None,
        expected_versions: tuple[int, ...] | None = None,
        *,
        with_target: bool = True,
        **values: Any,
    ) -> _Request:
        now = utcnow()
        params = {**scope.params(), "now": now, **values}
        params["expected_versions"] = list(expected_versions or ())
        if idempotency is not None:
            params.update(idempotency.params(now))
        return cls(db, scope, params, idempotency, expected_versions, with_target)


async def _on_postgresql(request: _Request, statement: Select[Any]) -> TaskWrite:
    """Run the write's one statement; replay, explain what it refused, or report the change."""
    row = await _run_statement(request.db, statement, request.params, request.idempotency)
    if isinstance(row, Recorded):
        return await _replay(request, row)
    if row.id is None:
        _raise_for(row, request.expected_versions)
        async with request.db.read() as connection:
            await _explain_missing(
                connection,
                request.params,
                with_target=request.with_target,
                expected_versions=request.expected_versions,
            )
    request.db.changed(request.scope.user_id)
    return TaskWrite(row, getattr(row, "successor_id", None))


Steps = Callable[[AsyncConnection, dict[str, Any]], Awaitable[TaskWrite]]


async def _on_sqlite(
    request: _Request, precondition: ColumnElement[bool] | None, status: int, steps: Steps
) -> TaskWrite:
    """Run the write's steps in one transaction: replay, or bump the counter (refusing what
    the explanation says), take the steps with the new `seq`, store the idempotency record."""
    params = request.params
    async with request.db.transaction() as connection:
        record = await _sqlite_prelude(connection, params, request.idempotency)
        if record is not None:
            return await _replay(request, record, connection)
        seq = (await connection.execute(bump_counter(False, precondition), params)).scalar()
        if seq is None:
            await _explain_missing(
                connection,
                params,
                with_target=request.with_target,
                expected_versions=request.expected_versions,
            )
        write = await steps(connection, {**params, "seq": seq})
        await _sqlite_record(connection, params, request.idempotency, status, write)
    request.db.changed(request.scope.user_id)
    return write


# --- create -------------------------------------------------------------------------------


def _insert_task(seq: ColumnElement[Any]) -> Insert:
    now = now_param()
    values = select(owner_id(), *(_field(name) for name in FIELDS), false(), now, now, seq)
    columns = ["user_id", *FIELDS, "completed", "created_at", "updated_at", "version"]
    return insert(tasks).from_select(columns, values).returning(*TASK_COLUMNS)


@lru_cache(maxsize=2)
def _create_statement(idempotent: bool) -> Select[Any]:
    counter = bump_counter(True, _precondition(None, idempotent)).cte("counter")
    created = _insert_task(counter.c.seq).cte("created")
    side_effects = [
        tag_rows_of(created).cte("created_tags"),
        _logged(created, ChangeKind.created).cte("created_log"),
    ]
    record = record_of(created, CREATED) if idempotent else None
    return _assemble(created, side_effects, with_target=False, record=record)


async def create_task(
    db: Database,
    scope: OwnerScope,
    fields: dict[str, Any],
    *,
    idempotency: IdempotencyKey | None = None,
) -> TaskWrite:
    """Create a task with `fields` (those of `TaskCreate`)."""
    request = _Request.of(db, scope, idempotency, with_target=False, **_field_params(fields))
    if db.is_postgresql:
        return await _on_postgresql(request, _create_statement(idempotency is not None))

    async def steps(connection: AsyncConnection, params: dict[str, Any]) -> TaskWrite:
        task = (await connection.execute(_insert_task(bindparam("seq")), params)).one()
        await add_tags(connection, task)
        await _log(connection, [task], ChangeKind.created, params)
        return TaskWrite(task)

    return await _on_sqlite(request, None, CREATED, steps)


# --- update and completion ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskUpdateShape:
    """Which columns an update sets: the statement is built once per shape."""

    fields: frozenset[str]
    completion: Completion | None
    expects_version: bool
    idempotent: bool


def _update_values(shape: TaskUpdateShape, seq: ColumnElement[Any]) -> dict[str, Any]:
    values: dict[str, Any] = {name: _field(name) for name in sorted(shape.fields)}
    if shape.completion is not None:
        values.update(completion_values(shape.completion))
    values["updated_at"] = now_param()
    values["version"] = seq
    return values


def _after_update(shape: TaskUpdateShape, name: str) -> ColumnElement[Any]:
    """A column's value once the UPDATE has run (bound if the update sets it)."""
    return _field(name) if name in shape.fields else tasks.c[name]


def _insert_successor(updated: CTE) -> Insert:
    """The next occurrence of the task `updated` just completed, under the id it reserved
    (PostgreSQL)."""
    now = now_param()
    values = select(
        updated.c.next_task_id,
        updated.c.user_id,
        updated.c.title,
        updated.c.description,
        false(),
        updated.c.priority,
        updated.c.tags,
        next_due_at_sql(updated.c.due_at, updated.c.recurrence),
        updated.c.recurrence,
        now,
        now,
        updated.c.version,
    ).where(updated.c.next_task_id.is_not(None))
    columns = [
        "id",
        "user_id",
        "title",
        "description",
        "completed",
        "priority",
        "tags",
        "due_at",
        "recurrence",
        "created_at",
        "updated_at",
        "version",
    ]
    # An existing id is the successor an earlier completion created: this statement's snapshot
    # may predate it (a concurrent completion committed while this one waited for the counter).
    return (
        postgresql_insert(tasks)
        .from_select(columns, values)
        .on_conflict_do_nothing(index_elements=[tasks.c.id])
        .returning(*TASK_COLUMNS)
    )


@lru_cache(maxsize=512)
def _update_statement(shape: TaskUpdateShape) -> Select[Any]:
    exists_as_expected = exists().where(*_target_conditions(shape.expects_version))
    counter = bump_counter(True, _precondition(exists_as_expected, shape.idempotent)).cte("counter")
    values = _update_values(shape, _counter_seq(counter))
    spawns = None
    if shape.completion is not None:
        spawns = spawn_condition(
            values["completed_at"],
            _after_update(shape, "recurrence"),
            _after_update(shape, "due_at"),
        )
        values["next_task_id"] = case(
            (spawns, TASK_ID_SEQUENCE.next_value()), else_=tasks.c.next_task_id
        )
    conditions = [*_target_conditions(shape.expects_version), _bumped(counter)]
    updated = (
        update(tasks).where(*conditions).values(values).returning(*TASK_COLUMNS).cte("updated")
    )
    side_effects: list[Any] = [_logged(updated, ChangeKind.updated).cte("updated_log")]
    if "tags" in shape.fields:
        side_effects += [
            drop_tags_missing_from(updated).cte("dropped_tags"),
            tag_rows_of(updated).cte("updated_tags"),
        ]
    successor_id: Any = None
    if spawns is not None:
        successor = _insert_successor(updated).cte("successor")
        side_effects += [
            tag_rows_of(successor).cte("successor_tags"),
            _logged(successor, ChangeKind.created).cte("successor_log"),
        ]
        successor_id = select(successor.c.id).scalar_subquery()
    record = None
    if shape.idempotent:
        record = record_of(updated, UPDATED, successor_id=successor_id)
    extra = [] if successor_id is None else [successor_id.label("successor_id")]
    if "tags" in shape.fields:
        extra.append(_fresh_snapshot(counter).label("fresh"))
    return _assemble(updated, side_effects, with_target=True, record=record, extra_columns=extra)


async def update_task(
    db: Database,
    scope: OwnerScope,
    task_id: int,
    fields: dict[str, Any],
    completion: Completion | None = None,
    *,
    expected_versions: tuple[int, ...] | None = None,
    idempotency: IdempotencyKey | None = None,
) -> TaskWrite:
    """Set `fields` (a partial `TaskUpdate`) and apply `completion`; with `expected_versions`,
    only if the task is still at one of them (the check and the write are one statement)."""
    shape = TaskUpdateShape(
        frozenset(fields), completion, expected_versions is not None, idempotency is not None
    )
    request = _Request.of(
        db, scope, idempotency, expected_versions, **_field_params(fields), task_id=task_id
    )
    if db.is_postgresql:
        return await _on_postgresql(request, _update_statement(shape))

    async def steps(connection: AsyncConnection, params: dict[str, Any]) -> TaskWrite:
        values = _update_values(shape, bindparam("seq"))
        statement = update(tasks).where(*_is_target()).values(values).returning(*TASK_COLUMNS)
        task = (await connection.execute(statement, params)).one()
        if "tags" in fields:
            await replace_tags(connection, task)
        successor_id = None
        if completion is not None:
            spawned = await spawn_next_occurrence(connection, task, params["now"], params["seq"])
            if spawned is not None:
                task, successor = spawned
                await add_tags(connection, successor)
                await _log(connection, [successor], ChangeKind.created, params)
                successor_id = successor.id
        await _log(connection, [task], ChangeKind.updated, params)
        return TaskWrite(task, successor_id)

    precondition = exists().where(*_target_conditions(expected_versions is not None))
    return await _on_sqlite(request, precondition, UPDATED, steps)


# --- deletion -----------------------------------------------------------------------------


def _unlink_predecessors(seq: ColumnElement[Any], of: Any) -> Any:
    """Tasks whose `next_task_id` names a task being deleted lose the link (and get a version
    and a log entry, since their state changes), instead of the foreign key clearing it
    unseen."""
    return (
        update(tasks)
        .where(tasks.c.user_id == owner_id(), tasks.c.next_task_id.in_(of))
        .values(next_task_id=None, version=seq)
        .returning(*TASK_COLUMNS)
    )


@lru_cache(maxsize=4)
def _delete_statement(expects_version: bool, idempotent: bool) -> Select[Any]:
    exists_as_expected = exists().where(*_target_conditions(expects_version))
    counter = bump_counter(True, _precondition(exists_as_expected, idempotent)).cte("counter")
    seq = _counter_seq(counter)
    deleted = (
        tasks.delete()
        .where(*_target_conditions(expects_version), _bumped(counter))
        .returning(*TASK_COLUMNS, seq.label("deleted_at_seq"))
        .cte("deleted")
    )
    unlinked = _unlink_predecessors(seq, select(deleted.c.id)).cte("unlinked")
    side_effects = [
        _logged(deleted, ChangeKind.deleted, deleted.c.deleted_at_seq).cte("deleted_log"),
        _logged(unlinked, ChangeKind.updated).cte("unlinked_log"),
    ]
    record = None
    if idempotent:
        record = _record_deletion(deleted)
    return _assemble(deleted, side_effects, with_target=True, record=record)


def _record_deletion(deleted: CTE) -> Insert:
    """The record of a deletion names the log entry of the deleted task."""
    answered = select(deleted.c.id, deleted.c.deleted_at_seq.label("version")).cte("answered")
    return record_of(answered, DELETED)


async def delete_task(
    db: Database,
    scope: OwnerScope,
    task_id: int,
    *,
    expected_versions: tuple[int, ...] | None = None,
    idempotency: IdempotencyKey | None = None,
) -> TaskWrite:
    """Delete one task; returns it as it was."""
    request = _Request.of(db, scope, idempotency, expected_versions, task_id=task_id)
    if db.is_postgresql:
        statement = _delete_statement(expected_versions is not None, idempotency is not None)
        return await _on_postgresql(request, statement)

    async def steps(connection: AsyncConnection, params: dict[str, Any]) -> TaskWrite:
        target = select(tasks.c.id).where(*_is_target())
        unlinking = _unlink_predecessors(bindparam("seq"), target)
        unlinked = (await connection.execute(unlinking, params)).all()
        deleting = (
            tasks.delete()
            .where(*_is_target())
            .returning(*TASK_COLUMNS, bindparam("seq").label("deleted_at_seq"))
        )
        task = (await connection.execute(deleting, params)).one()
        await _log(connection, [task], ChangeKind.deleted, params)
        await _log(connection, unlinked, ChangeKind.updated, params)
        return TaskWrite(task)

    precondition = exists().where(*_target_conditions(expected_versions is not None))
    return await _on_sqlite(request, precondition, DELETED, steps)


def _completed_of_owner() -> list[ColumnElement[bool]]:
    return [tasks.c.user_id == owner_id(), tasks.c.completed]


@lru_cache(maxsize=2)
def _delete_completed_statement(idempotent: bool) -> Select[Any]:
    # The counter moves even when nothing is completed (as on SQLite): deleting nothing is an
    # answer too, and is recorded as one.
    counter = bump_counter(True, _precondition(None, idempotent)).cte("counter")
    seq = _counter_seq(counter)
    deleted = (
        tasks.delete()
        .where(*_completed_of_owner(), _bumped(counter))
        .returning(*TASK_COLUMNS)
        .cte("deleted")
    )
    unlinked = (
        _unlink_predecessors(seq, select(deleted.c.id))
        .where(not_(tasks.c.completed))
        .cte("unlinked")
    )
    count = select(func.count()).select_from(deleted).scalar_subquery()
    side_effects: list[Any] = [
        _logged(deleted, ChangeKind.deleted, seq).cte("deleted_log"),
        _logged(unlinked, ChangeKind.updated).cte("unlinked_log"),
    ]
    columns: list[Any] = [not_revoked().label("allowed"), count.label("deleted")]
    if idempotent:
        # Recorded whenever the token holds, a deletion of nothing included.
        allowed = (
            select(not_revoked().label("allowed"))
            .where(not_revoked(), no_live_record())
            .cte("allowed")
        )
        side_effects.append(
            record_of(allowed, DELETED, task=False, deleted_count=count).cte("recorded")
        )
        columns.append(prior_fingerprint().label("prior_fingerprint"))
    return select(*columns).add_cte(*side_effects)


async def delete_completed_tasks(
    db: Database, scope: OwnerScope, *, idempotency: IdempotencyKey | None = None
) -> TaskWrite:
    """Delete every completed task of the owner; `deleted_count` says how many (deleting
    nothing is an answer too, and recorded as one)."""
    request = _Request.of(db, scope, idempotency, with_target=False)
    if db.is_postgresql:
        statement = _delete_completed_statement(idempotency is not None)
        row = await _run_statement(db, statement, request.params, idempotency)
        if isinstance(row, Recorded):
            return await _replay(request, row)
        if not row.allowed:
            raise TokenRevoked
        if row.deleted:
            db.changed(scope.user_id)
        return TaskWrite(deleted_count=row.deleted)

    async def steps(connection: AsyncConnection, params: dict[str, Any]) -> TaskWrite:
        doomed = select(tasks.c.id).where(*_completed_of_owner())
        unlinking = _unlink_predecessors(bindparam("seq"), doomed).where(not_(tasks.c.completed))
        unlinked = (await connection.execute(unlinking, params)).all()
        deleting = tasks.delete().where(*_completed_of_owner()).returning(*TASK_COLUMNS)
        deleted = (await connection.execute(deleting, params)).all()
        await _log(connection, deleted, ChangeKind.deleted, params)
        await _log(connection, unlinked, ChangeKind.updated, params)
        return TaskWrite(deleted_count=len(deleted))

    return await _on_sqlite(request, None, DELETED, steps)


# --- account deletion ---------------------------------------------------------------------


async def erase_owner(connection: AsyncConnection, is_postgresql: bool, user_id: str) -> None:
    """Delete every task of `user_id`, their change log and idempotency records, inside the
    caller's transaction.

    The owner's counter row is locked first (as every task write locks it first, so the two
    cannot deadlock) and kept, `closed`: a write that was waiting for it finds it closed and
    writes nothing, instead of recreating tasks for an account that no longer exists.
    """
    close = (
        insert_for("postgresql" if is_postgresql else "sqlite")(change_counters)
        .values(user_id=user_id, seq=1, closed=True)
        .on_conflict_do_update(
            index_elements=[change_counters.c.user_id],
            set_={"seq": change_counters.c.seq + 1, "closed": True},
        )
    )
    await connection.execute(close)
    await connection.execute(tasks.delete().where(tasks.c.user_id == user_id))
    await connection.execute(task_changes.delete().where(task_changes.c.user_id == user_id))
    await connection.execute(
        idempotency_records.delete().where(idempotency_records.c.scope == f"sub:{user_id}")
    )
