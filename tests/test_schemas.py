"""The OpenAPI document states what the validators enforce: a value it allows is accepted.

`bash .ci/fuzz` checks this against the running server; these tests check it in-process, for
every documented request body and the list's query parameters (values schemathesis generates
from the document, as the fuzzer does), and field by field against awkward strings (NUL,
every kind of whitespace, multi-byte characters) judged by the document's own validator.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

import schemas
from fuzz.formats import FORMATS
from main import create_app
from settings import load_settings
from tasks.listing import TaskListQuery
from tests.helpers import TEST_SECRET

BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/api/auth/signup"): schemas.SignupRequest,
    ("POST", "/api/auth/login"): schemas.LoginRequest,
    ("PUT", "/api/auth/password"): schemas.PasswordChange,
    ("DELETE", "/api/auth/me"): schemas.AccountDeletion,
    ("POST", "/api/{user_id}/tasks"): schemas.TaskCreate,
    ("PUT", "/api/{user_id}/tasks/{task_id}"): schemas.TaskUpdate,
    ("PATCH", "/api/{user_id}/tasks/{task_id}/complete"): schemas.TaskCompletion,
    ("POST", "/api/{user_id}/chat"): schemas.ChatRequest,
}
LIST = ("GET", "/api/{user_id}/tasks")
EXAMPLES = 100


@cache
def document() -> dict[str, Any]:
    settings_ = load_settings(
        database_url="sqlite+aiosqlite:///unused.db",
        better_auth_secret=TEST_SECRET,
        environment="test",
    )
    return create_app(settings_).openapi()


def password_format(value: str) -> bool:
    """`format: password`, as fuzz/formats.py documents it: at most 72 bytes in UTF-8."""
    return len(value.encode("utf-8", "surrogatepass")) <= schemas.PASSWORD_MAX_BYTES


def validator(schema: dict[str, Any]) -> Callable[[Any], bool]:
    """The document's judgement of a value, with `$ref`s resolved against the document."""
    root = {**schema, "components": document()["components"]}
    compiled = jsonschema_rs.validator_for(
        root, formats={schemas.PASSWORD_FORMAT: password_format}, validate_formats=True
    )
    return compiled.is_valid


def accepted(adapter: TypeAdapter[Any], value: Any) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="module", autouse=True)
def formats() -> None:
    for name, values in FORMATS.items():
        schemathesis.openapi.format(name, values())


class TestGeneratedRequests:
    """What schemathesis draws from the document is what the models accept (the fuzzer's
    "schema validation mismatch" warning, checked without a server)."""

    def test_every_documented_body_is_covered(self) -> None:
        documented = {
            (method.upper(), path)
            for path, item in document()["paths"].items()
            for method, operation in item.items()
            if "requestBody" in operation
        }
        assert documented == set(BODIES)

    @pytest.mark.parametrize(("method", "path"), sorted(BODIES))
    def test_documented_bodies_are_accepted(self, method: str, path: str) -> None:
        adapter = TypeAdapter(BODIES[(method, path)])
        operation = schemathesis.openapi.from_dict(document())[path][method]

        @settings(
            max_examples=EXAMPLES,
            database=None,
            derandomize=True,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            if case.body is None or not isinstance(case.body, dict):
                return  # PATCH .../complete without a body: a toggle
            assert accepted(adapter, case.body), case.body

        check()

    def test_documented_list_queries_are_accepted(self) -> None:
        adapter = TypeAdapter(TaskListQuery)
        operation = schemathesis.openapi.from_dict(document())[LIST[1]][LIST[0]]

        @settings(
            max_examples=EXAMPLES,
            database=None,
            derandomize=True,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            assert accepted(adapter, case.query or {}), case.query

        check()


def property_schema(model: str, name: str) -> dict[str, Any]:
    return document()["components"]["schemas"][model]["properties"][name]


def list_parameter_schema(name: str) -> dict[str, Any]:
    parameters = document()["paths"][LIST[1]]["get"]["parameters"]
    return next(p["schema"] for p in parameters if p["name"] == name)


AWKWARD_CHARACTERS = [
    *"aZ09-_",
    *"é日İ😀",  # 2, 3 and 4 bytes; "İ" lower-cases to two characters
    "\x00",
    *" \t\n\x0b\x0c\r\x85\xa0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000",  # trimmed
    *"\x1c\x1f\u200b\ufeff",  # whitespace to Python's str.isspace or ECMA-262, but not trimmed
]
AWKWARD_TEXT = st.text(st.sampled_from(AWKWARD_CHARACTERS), max_size=80) | st.text(max_size=40)

STRIPPED = {"title", "name", "tag", "message"}
# (document location, the validated type, the field's kind)
FIELDS = [
    (lambda: property_schema("TaskCreate", "title"), schemas.Title, "title"),
    (lambda: property_schema("TaskUpdate", "title"), schemas.Title, "title"),
    (lambda: property_schema("TaskCreate", "description")["anyOf"][0], schemas.Description, ""),
    (lambda: property_schema("TaskCreate", "tags")["items"], schemas.Tag, "tag"),
    (lambda: list_parameter_schema("tag")["items"], schemas.Tag, "tag"),
    (lambda: list_parameter_schema("search")["anyOf"][0], schemas.SearchText, ""),
    (lambda: property_schema("SignupRequest", "name")["anyOf"][0], schemas.Name, "name"),
    (lambda: property_schema("SignupRequest", "password"), schemas.NewPassword, ""),
    (lambda: property_schema("PasswordChange", "new_password"), schemas.NewPassword, ""),
    (lambda: property_schema("LoginRequest", "password"), schemas.Password, ""),
    (lambda: property_schema("AccountDeletion", "password"), schemas.Password, ""),
    (lambda: property_schema("ChatRequest", "message"), schemas.ChatText, "message"),
]


def documented_stricter(kind: str, value: str, schema: dict[str, Any]) -> bool:
    """Values the server accepts that the document refuses, on purpose: surrounding whitespace
    beyond `maxLength` (the limit applies once it is trimmed)."""
    return kind in STRIPPED and len(value) > schema["maxLength"]


def server_stricter(kind: str, value: str) -> bool:
    """The one rule the document states in words only: a tag's length once lower-cased."""
    return kind == "tag" and len(value.strip().lower()) > schemas.TAG_MAX_LENGTH


@pytest.mark.parametrize(
    ("locate", "type_", "kind"),
    [
        pytest.param(*field, id=f"field{index}-{field[2] or 'plain'}")
        for index, field in enumerate(FIELDS)
    ],
)
def test_fields_accept_what_the_document_allows(
    locate: Callable[[], dict[str, Any]], type_: Any, kind: str
) -> None:
    schema = locate()
    is_documented = validator(schema)
    adapter = TypeAdapter(type_)

    @settings(max_examples=300, database=None, derandomize=True, deadline=None)
    @given(AWKWARD_TEXT)
    def check(value: str) -> None:
        documented, valid = is_documented(value), accepted(adapter, value)
        if documented and not valid:
            assert server_stricter(kind, value), f"the document allows {value!r}"
        if valid and not documented:
            assert documented_stricter(kind, value, schema), f"the document refuses {value!r}"

    check()


@pytest.mark.parametrize(
    ("locate", "value", "documented", "valid"),
    [
        (FIELDS[0][0], "  padded  ", True, True),
        (FIELDS[0][0], " \u3000\n", False, False),
        (FIELDS[0][0], "a\x00", False, False),
        (FIELDS[0][0], "\ufeff", True, True),  # not whitespace to pydantic: a title
        (FIELDS[3][0], "İ" * 16, True, False),  # the stated exception
        (FIELDS[7][0], "é" * 36, True, True),  # 72 bytes
        (FIELDS[7][0], "é" * 37, False, False),  # 74 bytes: the format says no
        (FIELDS[7][0], "日本語のパス", False, False),  # 6 characters
        (FIELDS[9][0], "x", True, True),
        (FIELDS[9][0], "", False, False),
    ],
)
def test_known_values(
    locate: Callable[[], dict[str, Any]], value: str, documented: bool, valid: bool
) -> None:
    """The rules above, on values picked by hand (so the checks are seen to decide)."""
    schema = locate()
    type_ = next(t for loc, t, _ in FIELDS if loc is locate)
    assert validator(schema)(value) is documented
    assert accepted(TypeAdapter(type_), value) is valid


@pytest.mark.parametrize(
    ("email", "documented", "valid"),
    [
        ("ada@example.com", True, True),
        ("Ada.Lovelace+todo@Mail.Example.org", True, True),
        ("a@b.test", False, False),
        ("a@b.TEST", False, False),
        ("a@localhost", False, False),
        ("a@b.c1", False, False),
        ("a@ab--c.com", False, False),
        ("a..b@example.com", False, False),
        ('"a b"@example.com', False, False),
        (f"a@{'b' * 250}.com", False, False),
        # The document describes plain ASCII addresses (and `format: email` caps the local
        # part at 64 characters); the server also takes these.
        (f"{'a' * 70}@example.com", False, True),
        ("Ada <ada@example.com>", False, True),
        ("josé@example.com", False, True),
    ],
)
def test_emails_the_document_allows_are_accepted(email: str, documented: bool, valid: bool) -> None:
    is_documented = validator(property_schema("SignupRequest", "email"))
    assert is_documented(email) is documented
    assert accepted(TypeAdapter(schemas.Email), email) is valid


@pytest.mark.parametrize(
    ("moment", "valid"),
    [
        ("2030-01-31T09:00:00+01:00", True),
        ("0001-01-02T00:00:00+01:00", True),
        ("0001-01-01T00:00:00+01:00", False),  # before year 1 in UTC
        ("9999-12-31T23:00:00-05:00", False),  # after year 9999 in UTC
        ("2030-01-31T09:00:00", False),  # no offset
    ],
)
def test_due_dates_the_document_allows_are_accepted(moment: str, valid: bool) -> None:
    is_documented = validator(property_schema("TaskCreate", "due_at")["anyOf"][0])
    assert is_documented(moment) is valid
    assert accepted(TypeAdapter(schemas.Moment), moment) is valid


def test_the_whitespace_class_is_what_strip_whitespace_removes() -> None:
    trimmed = TypeAdapter(schemas.Title)
    whitespace = re.compile(f"[{schemas.WHITESPACE}]")
    removed = {
        code
        for code in range(1, sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and trimmed.validate_python(f"{chr(code)}x") == "x"
    }
    listed = {code for code in range(1, sys.maxunicode + 1) if whitespace.match(chr(code))}
    assert removed == listed


def test_updates_document_which_fields_cannot_be_null() -> None:
    properties = document()["components"]["schemas"]["TaskUpdate"]["properties"]
    for name in schemas.NOT_NULLABLE_IN_UPDATES:
        assert not validator(properties[name])(None), name
        with pytest.raises(ValidationError, match=f"{name} cannot be null"):
            schemas.TaskUpdate.model_validate({name: None})
    assert validator(properties["due_at"])(None)
    assert validator(properties["description"])(None)


@pytest.mark.parametrize(("method", "path"), sorted(BODIES))
def test_body_examples_are_valid_bodies(method: str, path: str) -> None:
    """Swagger UI's "Try it out" starts from the first example: it must be a body that works
    (without one, Swagger UI draws random strings from the patterns)."""
    content = document()["paths"][path][method.lower()]["requestBody"]["content"]
    schema = content["application/json"]["schema"]
    ref = next(branch["$ref"] for branch in schema.get("anyOf", [schema]) if "$ref" in branch)
    named = document()["components"]["schemas"][ref.rsplit("/", 1)[1]]
    examples = named.get("examples", [])
    if BODIES[(method, path)] is not schemas.TaskCompletion:  # `{}` and no body are its examples
        assert examples, f"{ref} has no example"
    for example in examples:
        assert validator(named)(example), example
        assert accepted(TypeAdapter(BODIES[(method, path)]), example), example
