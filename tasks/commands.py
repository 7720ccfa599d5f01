"""Task writes: one statement on PostgreSQL, one transaction on SQLite.

Every write does the same things in the same order: bump the owner's change counter (which
checks the token is not revoked and the target exists), change the task rows stamped with the
new `seq` as their version, keep `task_tags` in step, create the next occurrence of a recurring
task just completed, and append the change-log entries. On PostgreSQL these are the
data-modifying CTEs of a single statement that runs in autocommit: one round trip, atomic, and
a NOTIFY for live listeners delivered when it commits. SQLite, which has no data-modifying CTEs
(and where round trips cost nothing), runs the same steps as statements of one `BEGIN IMMEDIATE`
transaction. Statements are built once per shape; each request only binds values.

Each write returns the changed row, or raises `TokenRevoked`, `TaskNotFound` or
`VersionMismatch` (found on the rare path, by `_explain_missing`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Insert,
    Row,
    Select,
    Sequence,
    bindparam,
    case,
    exists,
    false,
    func,
    insert,
    not_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from auth.scope import OwnerScope, TokenRevoked, not_revoked, owner_id
from database.types import utcnow
from db import Database
from models import TASK_COLUMNS, ChangeKind, change_counters, task_changes, tasks
from tasks.changelog import bump_counter, dialect_insert, log_entries, log_values
from tasks.completion import (
    Completion,
    completion_values,
    now_param,
    spawn_condition,
    spawn_next_occurrence,
)
from tasks.errors import TaskNotFound, VersionMismatch
from tasks.recurrence import next_due_at_sql
from tasks.tags import add_tags, drop_tags_missing_from, replace_tags, tag_rows_of

# The fields a client sets (TaskCreate / TaskUpdate), bound as `field_<name>`.
FIELDS = ("title", "description", "priority", "tags", "due_at", "recurrence")
TASK_ID_SEQUENCE = Sequence("tasks_id_seq")


@dataclass(frozen=True, slots=True)
class TaskWrite:
    """A written task: its row after the write (before it, for a deletion), and the next
    occurrence the write created, if any."""

    task: Row[Any]
    successor_id: int | None = None


@dataclass(frozen=True, slots=True)
class TaskUpdateShape:
    """Which columns an update sets: the statement is built once per shape."""

    fields: frozenset[str]
    completion: Completion | None
    expects_version: bool


def _field(name: str) -> Any:
    return bindparam(f"field_{name}", type_=tasks.c[name].type)


def _field_params(values: dict[str, Any]) -> dict[str, Any]:
    return {f"field_{name}": value for name, value in values.items()}


def _is_target() -> list[ColumnElement[bool]]:
    return [tasks.c.id == bindparam("task_id"), tasks.c.user_id == owner_id()]


def _target_exists(expects_version: bool) -> ColumnElement[bool]:
    conditions = _is_target()
    if expects_version:
        conditions.append(tasks.c.version == bindparam("expected_version"))
    return exists().where(*conditions)


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


def _raise_for(explanation: Row[Any], expected_version: int | None) -> None:
    if not explanation.allowed:
        raise TokenRevoked
    current = getattr(explanation, "current_version", None)
    if "current_version" in explanation._fields and current is None:
        raise TaskNotFound
    if expected_version is not None and current != expected_version:
        raise VersionMismatch(current)


async def _explain_missing(
    connection: AsyncConnection,
    params: dict[str, Any],
    *,
    with_target: bool,
    expected_version: int | None = None,
) -> None:
    """The rare path: a fresh look at why nothing was written, raised as the matching error.
    When everything looks in order again, a concurrent account deletion closed the counter."""
    statement = EXPLAIN_TASK if with_target else EXPLAIN_TOKEN
    _raise_for((await connection.execute(statement, params)).one(), expected_version)
    raise TokenRevoked


def _with_explanation(statement_rows: CTE, with_target: bool) -> Select[Any]:
    """The main SELECT of a PostgreSQL write: one row always, the explanation joined to the
    written row (NULLs when nothing was written), so even a 401/404/412 is one round trip."""
    explanation = _explanation(with_target).subquery("explanation")
    return select(explanation, *statement_rows.c).select_from(
        explanation.outerjoin(statement_rows, true())
    )


def _logged(rows: CTE, kind: ChangeKind, seq: ColumnElement[Any] | None = None) -> Insert:
    return log_entries(rows, kind, seq)


def _counter_seq(counter: CTE) -> ColumnElement[Any]:
    """The write's `seq`, inside the statement."""
    return select(counter.c.seq).scalar_subquery()


def _bumped(counter: CTE) -> ColumnElement[bool]:
    """Whether the counter was bumped: the guard and the precondition held."""
    return exists(select(counter.c.seq))


# --- create -------------------------------------------------------------------------------


def _insert_task(seq: ColumnElement[Any]) -> Insert:
    now = now_param()
    values = select(owner_id(), *(_field(name) for name in FIELDS), false(), now, now, seq)
    columns = ["user_id", *FIELDS, "completed", "created_at", "updated_at", "version"]
    return insert(tasks).from_select(columns, values).returning(*TASK_COLUMNS)


@lru_cache(maxsize=1)
def _create_statement() -> Select[Any]:
    counter = bump_counter(True).cte("counter")
    created = _insert_task(counter.c.seq).cte("created")
    return _with_explanation(created, with_target=False).add_cte(
        tag_rows_of(created).cte("created_tags"),
        _logged(created, ChangeKind.created).cte("created_log"),
    )


async def create_task(db: Database, scope: OwnerScope, fields: dict[str, Any]) -> TaskWrite:
    """Create a task with `fields` (those of `TaskCreate`)."""
    params = {**scope.params(), **_field_params(fields), "now": utcnow()}
    if db.is_postgresql:
        async with db.statement() as connection:
            row = (await connection.execute(_create_statement(), params)).one()
            if row.id is None:
                _raise_for(row, None)
                await _explain_missing(connection, params, with_target=False)
        return TaskWrite(row)
    async with db.transaction() as connection:
        seq = await _bump(connection, params)
        task = (
            await connection.execute(_insert_task(bindparam("seq")), {**params, "seq": seq})
        ).one()
        await add_tags(connection, task)
        await _log(connection, [task], ChangeKind.created, seq, params["now"])
    return TaskWrite(task)


# --- update and completion ----------------------------------------------------------------


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


@lru_cache(maxsize=256)
def _update_statement(shape: TaskUpdateShape) -> Select[Any]:
    counter = bump_counter(True, _target_exists(shape.expects_version)).cte("counter")
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
    conditions = [*_is_target(), _bumped(counter)]
    if shape.expects_version:
        conditions.append(tasks.c.version == bindparam("expected_version"))
    updated = (
        update(tasks).where(*conditions).values(values).returning(*TASK_COLUMNS).cte("updated")
    )
    side_effects: list[Any] = [_logged(updated, ChangeKind.updated).cte("updated_log")]
    if "tags" in shape.fields:
        side_effects += [
            drop_tags_missing_from(updated).cte("dropped_tags"),
            tag_rows_of(updated).cte("updated_tags"),
        ]
    main = _with_explanation(updated, with_target=True)
    if spawns is not None:
        successor = _insert_successor(updated).cte("successor")
        side_effects += [
            tag_rows_of(successor).cte("successor_tags"),
            _logged(successor, ChangeKind.created).cte("successor_log"),
        ]
        main = main.add_columns(select(successor.c.id).scalar_subquery().label("successor_id"))
    return main.add_cte(*side_effects)


def _insert_successor(updated: CTE) -> Insert:
    """The next occurrence of the task `updated` just completed, under the id it reserved."""
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
    ).where(
        updated.c.next_task_id.is_not(None),
        not_(exists().where(tasks.c.id == updated.c.next_task_id)),
    )
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
    return insert(tasks).from_select(columns, values).returning(*TASK_COLUMNS)


async def update_task(
    db: Database,
    scope: OwnerScope,
    task_id: int,
    fields: dict[str, Any],
    completion: Completion | None = None,
    expected_version: int | None = None,
) -> TaskWrite:
    """Set `fields` (a partial `TaskUpdate`) and apply `completion`; with `expected_version`,
    only if the task is still at that version (the check and the write are one statement)."""
    shape = TaskUpdateShape(frozenset(fields), completion, expected_version is not None)
    params = {
        **scope.params(),
        **_field_params(fields),
        "task_id": task_id,
        "now": utcnow(),
        "expected_version": expected_version,
    }
    if db.is_postgresql:
        async with db.statement() as connection:
            row = (await connection.execute(_update_statement(shape), params)).one()
            if row.id is None:
                _raise_for(row, expected_version)
                await _explain_missing(
                    connection, params, with_target=True, expected_version=expected_version
                )
        return TaskWrite(row, getattr(row, "successor_id", None))
    async with db.transaction() as connection:
        seq = await _bump(
            connection,
            params,
            precondition=_target_exists(expected_version is not None),
            expected_version=expected_version,
        )
        values = _update_values(shape, bindparam("seq"))
        statement = update(tasks).where(*_is_target()).values(values).returning(*TASK_COLUMNS)
        task = (await connection.execute(statement, {**params, "seq": seq})).one()
        if "tags" in fields:
            await replace_tags(connection, task)
        changed = [task]
        successor_id = None
        if completion is not None:
            spawned = await spawn_next_occurrence(connection, task, params["now"], seq)
            if spawned is not None:
                task, successor = spawned
                await add_tags(connection, successor)
                changed = [task, successor]
                successor_id = successor.id
        await _log(connection, changed[:1], ChangeKind.updated, seq, params["now"])
        await _log(connection, changed[1:], ChangeKind.created, seq, params["now"])
    return TaskWrite(task, successor_id)


# --- deletion -----------------------------------------------------------------------------


def _unlink_predecessors(seq: ColumnElement[Any], of: Any, gate: ColumnElement[bool] | None) -> Any:
    """Tasks whose `next_task_id` names a task being deleted lose the link (and get a version
    and a log entry, since their state changes), instead of the foreign key clearing it
    unseen."""
    conditions = [tasks.c.user_id == owner_id(), tasks.c.next_task_id.in_(of)]
    if gate is not None:
        conditions.append(gate)
    return (
        update(tasks)
        .where(*conditions)
        .values(next_task_id=None, version=seq)
        .returning(*TASK_COLUMNS)
    )


@lru_cache(maxsize=2)
def _delete_statement(expects_version: bool) -> Select[Any]:
    counter = bump_counter(True, _target_exists(expects_version)).cte("counter")
    gate = _bumped(counter)
    conditions = [*_is_target(), gate]
    if expects_version:
        conditions.append(tasks.c.version == bindparam("expected_version"))
    deleted = tasks.delete().where(*conditions).returning(*TASK_COLUMNS).cte("deleted")
    unlinked = _unlink_predecessors(_counter_seq(counter), select(deleted.c.id), gate).cte(
        "unlinked"
    )
    return _with_explanation(deleted, with_target=True).add_cte(
        _logged(deleted, ChangeKind.deleted, _counter_seq(counter)).cte("deleted_log"),
        _logged(unlinked, ChangeKind.updated).cte("unlinked_log"),
    )


async def delete_task(
    db: Database, scope: OwnerScope, task_id: int, expected_version: int | None = None
) -> TaskWrite:
    """Delete one task; returns it as it was."""
    params = {
        **scope.params(),
        "task_id": task_id,
        "now": utcnow(),
        "expected_version": expected_version,
    }
    if db.is_postgresql:
        async with db.statement() as connection:
            row = (
                await connection.execute(_delete_statement(expected_version is not None), params)
            ).one()
            if row.id is None:
                _raise_for(row, expected_version)
                await _explain_missing(
                    connection, params, with_target=True, expected_version=expected_version
                )
        return TaskWrite(row)
    async with db.transaction() as connection:
        seq = await _bump(
            connection,
            params,
            precondition=_target_exists(expected_version is not None),
            expected_version=expected_version,
        )
        values = {**params, "seq": seq}
        target = select(tasks.c.id).where(*_is_target())
        unlinked = (
            await connection.execute(_unlink_predecessors(bindparam("seq"), target, None), values)
        ).all()
        task = (
            await connection.execute(
                tasks.delete().where(*_is_target()).returning(*TASK_COLUMNS), values
            )
        ).one()
        await _log(connection, [task], ChangeKind.deleted, seq, params["now"])
        await _log(connection, unlinked, ChangeKind.updated, seq, params["now"])
    return TaskWrite(task)


def _completed_of_owner() -> list[ColumnElement[bool]]:
    return [tasks.c.user_id == owner_id(), tasks.c.completed]


@lru_cache(maxsize=1)
def _delete_completed_statement() -> Select[Any]:
    counter = bump_counter(True, exists().where(*_completed_of_owner())).cte("counter")
    gate = _bumped(counter)
    deleted = (
        tasks.delete().where(*_completed_of_owner(), gate).returning(*TASK_COLUMNS).cte("deleted")
    )
    unlinked = _unlink_predecessors(_counter_seq(counter), select(deleted.c.id), gate)
    unlinked = unlinked.where(not_(tasks.c.completed)).cte("unlinked")
    count = select(func.count()).select_from(deleted).scalar_subquery()
    return select(not_revoked().label("allowed"), count.label("deleted")).add_cte(
        _logged(deleted, ChangeKind.deleted, _counter_seq(counter)).cte("deleted_log"),
        _logged(unlinked, ChangeKind.updated).cte("unlinked_log"),
    )


async def delete_completed_tasks(db: Database, scope: OwnerScope) -> list[int]:
    """Delete every completed task of the owner; returns their ids."""
    params = {**scope.params(), "now": utcnow()}
    if db.is_postgresql:
        async with db.statement() as connection:
            row = (await connection.execute(_delete_completed_statement(), params)).one()
        if not row.allowed:
            raise TokenRevoked
        return row.deleted
    async with db.transaction() as connection:
        seq = await _bump(
            connection,
            params,
            precondition=exists().where(*_completed_of_owner()),
            with_target=False,
            nothing_is_fine=True,
        )
        if seq is None:
            return 0
        values = {**params, "seq": seq}
        doomed = select(tasks.c.id).where(*_completed_of_owner())
        unlinked_statement = _unlink_predecessors(bindparam("seq"), doomed, None).where(
            not_(tasks.c.completed)
        )
        unlinked = (await connection.execute(unlinked_statement, values)).all()
        deleted = (
            await connection.execute(
                tasks.delete().where(*_completed_of_owner()).returning(*TASK_COLUMNS), values
            )
        ).all()
        await _log(connection, deleted, ChangeKind.deleted, seq, params["now"])
        await _log(connection, unlinked, ChangeKind.updated, seq, params["now"])
    return len(deleted)


# --- SQLite steps -------------------------------------------------------------------------


async def _bump(
    connection: AsyncConnection,
    params: dict[str, Any],
    *,
    precondition: ColumnElement[bool] | None = None,
    expected_version: int | None = None,
    with_target: bool = True,
    nothing_is_fine: bool = False,
) -> Any:
    seq = (await connection.execute(bump_counter(False, precondition), params)).scalar()
    if seq is None:
        if nothing_is_fine:
            allowed = (await connection.execute(EXPLAIN_TOKEN, params)).scalar()
            if not allowed:
                raise TokenRevoked
            return None
        await _explain_missing(
            connection,
            params,
            with_target=precondition is not None and with_target,
            expected_version=expected_version,
        )
    return seq


async def _log(
    connection: AsyncConnection, rows: Iterable[Any], kind: ChangeKind, seq: int, now: Any
) -> None:
    entries = [
        log_values(row, kind, seq if kind is ChangeKind.deleted else row.version, now)
        for row in rows
    ]
    if entries:
        await connection.execute(task_changes.insert(), entries)


# --- account deletion ---------------------------------------------------------------------


async def erase_owner(connection: AsyncConnection, is_postgresql: bool, user_id: str) -> None:
    """Delete every task of `user_id` and their change log, inside the caller's transaction.

    The owner's counter row is locked first (as every task write locks it first, so the two
    cannot deadlock) and kept, `closed`: a write that was waiting for it finds it closed and
    writes nothing, instead of recreating tasks for an account that no longer exists.
    """
    close = (
        dialect_insert(is_postgresql)(change_counters)
        .values(user_id=user_id, seq=1, closed=True)
        .on_conflict_do_update(
            index_elements=[change_counters.c.user_id],
            set_={"seq": change_counters.c.seq + 1, "closed": True},
        )
    )
    await connection.execute(close)
    await connection.execute(tasks.delete().where(tasks.c.user_id == user_id))
    await connection.execute(task_changes.delete().where(task_changes.c.user_id == user_id))
