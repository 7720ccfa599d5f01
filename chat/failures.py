"""What goes wrong with the model, as answers a client can act on.

A model that cannot be reached, answers with an error or something unusable is a 502; one that
rate-limits us (or says it is overloaded) is a 503 with its `Retry-After`; one that does not
answer within `CHAT_MODEL_TIMEOUT` is a 504. Without `OPENAI_API_KEY` there is no model to call:
503, saying what to set. The detail never carries the provider's raw error body (it may echo
the request), only its status and a sentence.
"""

from __future__ import annotations

import logging
import math

import openai
from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError, UserError

from settings import Settings

logger = logging.getLogger("todo.chat")

DEFAULT_RETRY_AFTER = 30
NOT_CONFIGURED = (
    "The chat assistant is not configured: set OPENAI_API_KEY (and OPENAI_BASE_URL and "
    "CHAT_MODEL for a provider other than OpenAI) and restart the API"
)


class ChatFailure(Exception):
    """A turn that could not be answered: the HTTP status, a sentence and when to retry."""

    def __init__(self, status: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def not_configured() -> ChatFailure:
    return ChatFailure(503, NOT_CONFIGURED, None)


def _retry_after(error: openai.APIStatusError) -> int:
    value = error.response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER
    return max(1, min(3600, math.ceil(seconds)))


def model_failure(error: BaseException, settings: Settings) -> ChatFailure | None:
    """The answer to a failed model call (None: not a model failure, a bug of ours)."""
    model = settings.chat_model
    if isinstance(error, openai.APITimeoutError):
        return ChatFailure(
            504,
            f"The model ({model}) did not answer within {settings.chat_model_timeout:g} "
            "seconds; try again",
        )
    if isinstance(error, openai.APIConnectionError):
        return ChatFailure(502, f"The model provider could not be reached: {error}")
    if isinstance(error, openai.RateLimitError):
        seconds = _retry_after(error)
        return ChatFailure(
            503,
            f"The model provider is rate-limiting this service; try again in {seconds} seconds",
            seconds,
        )
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return ChatFailure(
            502, f"The model provider refused OPENAI_API_KEY (HTTP {error.status_code})"
        )
    if isinstance(error, openai.NotFoundError):
        return ChatFailure(
            502,
            f"The model provider does not offer the model {model!r} (HTTP 404): check "
            "CHAT_MODEL and OPENAI_BASE_URL",
        )
    if isinstance(error, openai.APIStatusError):
        if error.status_code in (503, 529):
            seconds = _retry_after(error)
            return ChatFailure(
                503,
                f"The model provider is overloaded (HTTP {error.status_code}); try again in "
                f"{seconds} seconds",
                seconds,
            )
        return ChatFailure(502, f"The model provider failed to answer (HTTP {error.status_code})")
    if isinstance(error, openai.OpenAIError):
        return ChatFailure(502, f"The model provider sent an unusable answer: {error}")
    if isinstance(error, MaxTurnsExceeded):
        return ChatFailure(
            502,
            f"The assistant did not finish within {settings.chat_max_turns} steps "
            "(CHAT_MAX_TURNS); try a simpler request",
        )
    if isinstance(error, ModelBehaviorError | UserError):
        return ChatFailure(502, f"The model answered in a way the assistant cannot use: {error}")
    if isinstance(error, UnicodeError):  # a lone surrogate escape (`\ud800`) in its JSON
        return ChatFailure(502, "The model answered with text that is not valid Unicode")
    return None
