"""The parts a route is declared with (see `jobq.http.table`): its parameters, its body, who
may call it, and what it answers. The dispatcher (`jobq.http.dispatch`) compiles them into
matchers and parsers once at start-up; `jobq.http.openapi` describes them."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobq import errors

if TYPE_CHECKING:
    from jobq.http.call import Call, Reply

Schema = dict[str, Any]
Handler = Callable[["Call"], Awaitable["Reply"]]

#: largest integer a parameter takes; larger ones are clamped (a huge `start` or `count`
#: means "all", and the databases store 64-bit integers)
MAX_INT = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter. `parse` turns the text into the value handlers find in
    `call.args` (path parameters always have one; a query parameter without one is read
    from `call.query` by its handler)."""

    name: str
    schema: Schema
    description: str
    where: str = "query"
    parse: Callable[[str], Any] | None = None
    #: the name of its entry in the OpenAPI components (two parameters may share a name)
    key: str = ""
    #: a query parameter the request must give (400 naming it when absent)
    required: bool = False

    @property
    def ref(self) -> str:
        return self.key or self.name


def path(name: str, schema: Schema, description: str, parse: Callable[[str], Any],
         key: str = "") -> Param:
    return Param(name, schema, description, "path", parse, key)


def integer(name: str, description: str, minimum: int = 0, maximum: int = MAX_INT,
            key: str = "", strict: bool = False) -> Param:
    """An integer query parameter: below `minimum` is a 400, above `maximum` clamped (or
    with `strict` a 400, and the schema says the maximum)."""

    def parse(text: str) -> int | None:
        if text == "":
            return None
        try:
            number = int(text)
        except ValueError:
            raise errors.BadRequest(f"{name}: {text!r} is not an integer") from None
        if number < minimum:
            raise errors.BadRequest(f"{name}: must be at least {minimum}")
        if strict and number > maximum:
            raise errors.BadRequest(f"{name}: must be at most {maximum}")
        return min(number, maximum)

    schema: Schema = {"type": "integer", "minimum": minimum}
    if strict:
        schema["maximum"] = maximum
    return Param(name, schema, description, parse=parse, key=key)


def text(name: str, description: str, schema: Schema | None = None, many: bool = False,
         key: str = "", required: bool = False) -> Param:
    """A text query parameter (`many`: may be repeated), read by the handler."""
    item = schema or {"type": "string"}
    return Param(name, {"type": "array", "items": item} if many else item, description,
                 key=key, required=required)


class BodyKind(enum.Enum):
    #: no body is read
    NONE = "none"
    #: JSON lines, or one JSON object (one line): `call.body` is the list of values
    LINES = "lines"
    #: one JSON value: `call.body` is the value
    VALUE = "value"
    #: the raw bytes, parsed by the handler (`call.raw`)
    RAW = "raw"
    #: a urlencoded form: `call.body` is its list of (name, value) pairs, in order
    FORM = "form"


@dataclass(frozen=True, slots=True)
class Body:
    kind: BodyKind
    #: the OpenAPI requestBody; VALUE: when it says `"required": False`, an empty body is
    #: the value None
    describe: Schema = field(default_factory=dict)
    #: VALUE: the name an error names, or the path parameter whose value is that name
    name: str = "body"
    name_from_path: bool = False


NO_BODY = Body(BodyKind.NONE)


class Access(enum.Enum):
    #: anyone, no credentials (health, clock, metrics, this description)
    PUBLIC = "public"
    #: any valid credentials; the queue service checks what they reach
    CALLER = "caller"
    #: credentials that reach the job of the path (`pid`, `sid`, `jobno`), checked before
    #: the query and the body are read: a caller without access learns nothing more (403,
    #: never a 400 about the request) and sends no body to be read
    JOB = "job"
    #: admin keys only
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class ErrorShape:
    """The errors of a family of routes in a JSON body of their own, instead of the plain
    text (and `{"error", "message"}` for 401 and 403) of the others. The status, the message
    and the headers (Retry-After, WWW-Authenticate) stay those of the error table."""

    #: the body's schema, under this name in the OpenAPI components
    name: str
    schema: Schema
    #: (status, message) -> the JSON value of the body
    render: Callable[[int, str], Any]


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path: everything the server knows of it."""

    method: str
    path: str
    handler: Handler
    op_id: str
    summary: str
    tag: str
    #: the 2xx answers, as OpenAPI responses
    answers: dict[str, Schema]
    params: Sequence[Param] = ()
    body: Body = NO_BODY
    access: Access = Access.CALLER
    #: the error answers (codes of `jobq.http.openapi.ERRORS`); None: by method and access
    errors: Sequence[str] | None = None
    #: errors rendered in this shape (None: the default one)
    error_shape: ErrorShape | None = None
    #: query parameters not declared are accepted (a form the handler reads from the
    #: query too); otherwise they are a 400
    any_query: bool = False
