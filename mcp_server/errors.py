"""Tool errors a model can read: every refusal is an `is_error` result with one clear sentence,
never a protocol error, a 500 or a traceback.

The SDK validates a call's arguments against the tool's signature (which uses the REST bodies'
own constrained types, so the limits are the REST ones) and reports a failure as pydantic's
multi-line dump, prefixed with the tool's name; the task rules' refusals come prefixed too.
`ReadableTool` reports both as the bare, readable message. A crash stays the SDK's generic
"Error executing tool <name>", its traceback in the server log only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from pydantic import ValidationError

from auth.scope import TokenRevoked
from db import is_database_unavailable
from observability.metrics import MCP_TOOL_CALLS, database_unavailable
from tasks.errors import TaskNotFound

TASK_NOT_FOUND = "Task not found"
TOKEN_REVOKED = "Token has been revoked: sign in again for a new token"
DATABASE_UNAVAILABLE = "The task database is unavailable right now; try again in a few seconds"
VALUE_ERROR_PREFIX = "Value error, "


def describe(error: ValidationError) -> str:
    """`Invalid arguments: title: String should have at most 200 characters; ...`."""
    problems = []
    for item in error.errors(include_url=False):
        message = str(item["msg"]).removeprefix(VALUE_ERROR_PREFIX)
        location = ".".join(str(part) for part in item["loc"])
        problems.append(f"{location}: {message}" if location else message)
    return "Invalid arguments: " + "; ".join(problems)


def invalid(error: ValidationError) -> ToolError:
    return ToolError(describe(error))


@contextmanager
def task_rule_errors() -> Iterator[None]:
    """The task rules' refusals, as tool errors (the REST routes' 404, 401 and 503)."""
    try:
        yield
    except TaskNotFound:
        raise ToolError(TASK_NOT_FOUND) from None
    except TokenRevoked:
        raise ToolError(TOKEN_REVOKED) from None
    except Exception as exc:
        if is_database_unavailable(exc):
            database_unavailable("mcp")
            raise ToolError(DATABASE_UNAVAILABLE) from exc
        raise


class ReadableTool(Tool):
    """A tool whose anticipated failures reach the model as their own message, unprefixed, and
    that refuses arguments it does not take (pydantic would drop them silently: a model that
    passes `completed: true` to `update_task` must hear that nothing of the sort happened)."""

    @classmethod
    def from_function(cls, *args: Any, **kwargs: Any) -> ReadableTool:
        tool = super().from_function(*args, **kwargs)
        tool.parameters["additionalProperties"] = False
        return tool

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        """The call, counted by tool and outcome (`ok`, `error`: a refusal, `crash`)."""
        outcome = "crash"
        try:
            result = await self._run(arguments, context, convert_result)
        except UnexpectedToolError:  # a crash, which the SDK wraps
            raise
        except ToolError:
            outcome = "error"
            raise
        else:
            outcome = "ok"
            return result
        finally:
            MCP_TOOL_CALLS.labels(self.name, outcome).inc()

    async def _run(self, arguments: dict[str, Any], context: Any, convert_result: bool) -> Any:
        unknown = sorted(set(arguments) - set(self.parameters.get("properties", {})))
        if unknown:
            takes = ", ".join(self.parameters.get("properties", {}))
            raise ToolError(
                f"Unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                f"{self.name} takes {takes}"
            )
        try:
            return await super().run(arguments, context, convert_result=convert_result)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):  # the arguments failed the input schema
                raise invalid(cause) from cause
            if isinstance(cause, ToolError):  # raised by the tool itself
                raise cause from cause.__cause__
            raise
