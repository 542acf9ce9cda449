"""Writes service/openapi.json: python tools/openapi_source.py > service/openapi.json

The document is kept in the repo as JSON; this is how it was laid out, so that a
change to the API is one edit here and a regeneration, checked by tests/test_openapi.py.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson

ERRORS = {
    "400": "The body is not JSON, could not be decoded or did not all arrive, or a cursor "
    "does not decode or was forged.",
    "401": "No token, not Bearer, or a wrong token.",
    "403": "The token lacks the scope this route needs.",
    "404": "Unknown session (in the token's namespace).",
    "408": "The body did not arrive whole within client_timeout; the connection is closed.",
    "409": "A session with this id exists.",
    "413": "The body is over the limit.",
    "415": "The body is not sent as application/json.",
    "422": "A value is missing or out of range.",
    "429": "Over the token's rate limit.",
    "503": "Redis cannot do this now: unreachable, too slow, or refusing (loading its data, "
    "out of memory, refusing the service's credentials, read-only or failing over, busy "
    "with a long script, ...). The detail names the cause; retry after Retry-After.",
}
# Search, history, export and batch ingest are admitted per namespace (service/admission.py).
ADMISSION = (
    "Over the token's rate limit, or this namespace already has expensive_concurrency "
    "searches, histories, exports and batches running in this worker and four times as "
    "many waiting for a slot."
)
# A write whose reply from Redis was lost (service.store.OutcomeUnknown).
OUTCOME_UNKNOWN = (
    " For a write, the detail may instead say that the outcome is unknown: the write may "
    "or may not have been applied, and repeating the request with the same ids is safe."
)
WITH_RETRY = {"429", "503"}
WRITE_SCOPES = {"sessions:write", "sessions:delete"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def retry_after() -> dict[str, Any]:
    return {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    }


def errors(*codes: str, admitted: bool = False, write: bool = False) -> dict[str, Any]:
    found = {}
    for code in ("401", "429", "503", *codes):
        description = ERRORS[code]
        if code == "429" and admitted:
            description = ADMISSION
        if code == "503" and write:
            description += OUTCOME_UNKNOWN
        response: dict[str, Any] = {"description": description, **json_body(ref("Error"))}
        if code in WITH_RETRY:
            response["headers"] = retry_after()
        if code == "401":
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        found[code] = response
    return found


def operation(
    summary: str,
    scope: str | None,
    ok: dict[str, Any],
    error_codes: tuple[str, ...],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    admitted: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """One operation; a route with a body also answers 408 (its body is read under
    client_timeout), and an ``admitted`` one 429 for its namespace's admission."""
    codes = (*error_codes, "408") if body is not None else error_codes
    failures = errors(*codes, admitted=admitted, write=scope in WRITE_SCOPES)
    spec: dict[str, Any] = {"summary": summary, "responses": {**ok, **failures}}
    notes = [f"Needs the `{scope}` scope."] if scope else []
    if admitted:
        notes.append(
            "Admitted per namespace: at most `expensive_concurrency` (default 2) of a "
            "namespace's searches, histories, exports and batches run at once in a worker, "
            "four times as many more wait for a slot (at most `redis_timeout`), and beyond "
            "that the answer is 429 with Retry-After."
        )
    if description:
        notes.append(description)
    if notes:
        spec["description"] = " ".join(notes)
    if parameters:
        spec["parameters"] = parameters
    if body is not None:
        spec["requestBody"] = {"required": True, **json_body(body)}
    return spec


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


SESSION_ID = {
    "name": "session_id",
    "in": "path",
    "required": True,
    "description": "The session id, percent-encoded (spaces/abc becomes spaces%2Fabc).",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "pattern": "^[^\\u0000-\\u001f\\u007f]+$",
    },
}

STRING = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
CHANNEL = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
ROLE = {"type": "string", "enum": ["user", "assistant", "system", "tool"]}
OBJECT = {"type": "object"}
# SPEC §7: a tag, a person's id and a reader's name, as service/models.py checks them.
TAG = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
NO_CONTROL = "^[^\\u0000-\\u001f\\u007f]+$"
USER = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_CONTROL}
READER = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": NO_CONTROL}
COUNT = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["detail"], "properties": {"detail": STRING}},
    "Status": {"type": "object", "required": ["status"], "properties": {"status": STRING}},
    "Counts": {
        "type": "object",
        "required": ["total", "active", "archived", "pinned", "channels", "tags"],
        "properties": {
            "total": {**COUNT, "description": "Sessions that are not archived."},
            "active": {**COUNT, "description": "Of those, the active ones."},
            "archived": {**COUNT, "description": "Archived sessions."},
            "pinned": {**COUNT, "description": "Pinned sessions that are not archived."},
            "channels": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["total", "active"],
                    "properties": {
                        "total": {"type": "integer", "minimum": 0},
                        "active": {"type": "integer", "minimum": 0},
                        "unread": {
                            **COUNT,
                            "description": "With ?reader=: this channel's sessions (not "
                            "archived) with messages the reader has not read.",
                        },
                    },
                },
                "description": "Per channel, its sessions that are not archived; a "
                "channel with none is left out.",
            },
            "tags": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "Per tag, the sessions (not archived) that have it.",
            },
            "unread": {
                **COUNT,
                "description": "With ?reader=: sessions (not archived) with messages the "
                "reader has not read.",
            },
            "activity": {
                "type": "object",
                "required": ["hours", "channels"],
                "properties": {
                    "hours": {"type": "array", "items": TIME},
                    "channels": {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                    },
                },
            },
        },
    },
    "SessionItem": {
        "type": "object",
        "required": [
            "id",
            "title",
            "created_at",
            "updated_at",
            "message_count",
            "channel",
            "pinned",
            "archived",
            "tags",
            "active",
        ],
        "properties": {
            "id": STRING,
            "title": STRING,
            "created_at": TIME,
            "updated_at": TIME,
            "message_count": {"type": "integer", "minimum": 0},
            "channel": STRING,
            "pinned": {"type": "boolean"},
            "archived": {"type": "boolean"},
            "tags": {"type": "array", "maxItems": 20, "uniqueItems": True, "items": TAG},
            "user": {
                **USER,
                "description": "The person's id from the bot, the same on every channel; "
                "absent when no message or create gave one.",
            },
            "active": {"type": "boolean"},
            "unread_count": {
                **COUNT,
                "description": "Only with ?reader= on the list: the messages that reader "
                "has not read.",
            },
        },
    },
    "Session": {
        "allOf": [
            ref("SessionItem"),
            {
                "type": "object",
                "required": ["title_source", "metadata"],
                "properties": {
                    "title_source": {"type": "string", "enum": ["default", "auto", "user"]},
                    "metadata": OBJECT,
                },
            },
        ]
    },
    "SessionList": {
        "type": "object",
        "required": ["sessions", "total", "next_cursor"],
        "properties": {
            "sessions": {"type": "array", "items": ref("SessionItem")},
            "total": {
                "type": "integer",
                "minimum": 0,
                "description": "The sessions that match: exact, unless total_exact is false.",
            },
            "total_exact": {
                "type": "boolean",
                "const": False,
                "description": "Present (false) only when total is an upper bound: two "
                "or more of channel, pinned=true, tag and user, pinned=false with one of "
                "them, or unread=true.",
            },
            "next_cursor": {
                "type": ["string", "null"],
                "description": "cursor= for the next page; null on the last. A page may "
                "hold fewer than limit sessions, even none, and still have one: page "
                "until it is null.",
            },
        },
    },
    "NewSession": {
        "type": "object",
        "required": ["channel"],
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 256},
            "channel": CHANNEL,
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "metadata": OBJECT,
            "user": USER,
        },
    },
    "SessionChange": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "description": "Any of these; what is left out stays as it is.",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "pinned": {"type": "boolean"},
            "archived": {"type": "boolean"},
            "tags": {
                "type": "array",
                "items": TAG,
                "description": "Replaces the tags: at most 20 once repeats are dropped, "
                "in the order given.",
            },
            "metadata": {
                "type": ["object", "null"],
                "description": "Replaces the metadata; {} (or null) removes it.",
            },
        },
    },
    "ReadMark": {
        "type": "object",
        "required": ["reader"],
        "properties": {
            "reader": READER,
            "message_count": {
                "type": "integer",
                "minimum": 0,
                "maximum": 1000000000,
                "description": "Read up to this many messages (at most all the session "
                "has); default: all it has now.",
            },
        },
    },
    "Bulk": {
        "type": "object",
        "required": ["action", "ids"],
        "properties": {
            "action": {
                "type": "string",
                "enum": ["archive", "unarchive", "pin", "unpin", "tag", "untag", "delete"],
            },
            "ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": SESSION_ID["schema"],
                "description": "Session ids (not percent-encoded); repeats count once.",
            },
            "tag": {**TAG, "description": "Required with tag and untag; refused with the others."},
            "dry_run": {
                "type": "boolean",
                "default": False,
                "description": "Answer what the action would do, and change nothing.",
            },
        },
    },
    "BulkOutcome": {
        "type": "object",
        "required": ["matched", "changed", "missing"],
        "properties": {
            "matched": {**COUNT, "description": "Sessions that exist."},
            "changed": {
                **COUNT,
                "description": "Those the action changed (or would, in a dry run); one it "
                "already holds, or tag on a session that has 20 tags, is matched, not "
                "changed.",
            },
            "missing": {
                "type": "array",
                "items": STRING,
                "description": "The ids with no session.",
            },
        },
    },
    "Erased": {
        "type": "object",
        "required": ["deleted", "session_ids"],
        "properties": {
            "deleted": COUNT,
            "session_ids": {"type": "array", "items": STRING},
        },
    },
    "Title": {
        "type": "object",
        "required": ["title"],
        "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200}},
    },
    "Message": {
        "type": "object",
        "required": ["id", "role", "content", "timestamp", "metadata"],
        "properties": {
            "id": STRING,
            "role": ROLE,
            "content": STRING,
            "timestamp": TIME,
            "metadata": OBJECT,
        },
    },
    "NewMessage": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": ROLE,
            "content": STRING,
            "channel": CHANNEL,
            "id": {"type": "string", "minLength": 1, "maxLength": 256},
            "timestamp": {"oneOf": [TIME, {"type": "number"}]},
            "metadata": OBJECT,
            "user": {
                **USER,
                "description": "The person's id from the bot; a session keeps the first one given.",
            },
        },
    },
    "Ingested": {
        "type": "object",
        "required": ["message", "session"],
        "properties": {"message": ref("Message"), "session": ref("Session")},
    },
    "Batch": {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": {
                    "allOf": [
                        ref("NewMessage"),
                        {
                            "type": "object",
                            "required": ["session_id"],
                            "properties": {
                                "session_id": {"type": "string", "minLength": 1, "maxLength": 256}
                            },
                        },
                    ]
                },
            }
        },
    },
    "BatchResults": {
        "type": "object",
        "required": ["results", "created", "duplicates", "failed"],
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["status"],
                    "properties": {
                        "status": {"type": "integer", "enum": [200, 201, 422]},
                        "session_id": STRING,
                        "message": ref("Message"),
                        "message_count": {"type": "integer"},
                        "detail": STRING,
                    },
                },
            },
            "created": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "failed": {"type": "integer"},
        },
    },
    "History": {
        "type": "object",
        "required": ["messages", "next_cursor"],
        "properties": {
            "messages": {
                "type": "array",
                "items": ref("Message"),
                "description": "At most limit messages and at most 256 KiB of them (one "
                "at least), oldest first: fewer than limit when the bytes would pass.",
            },
            "next_cursor": {
                "type": ["string", "null"],
                "description": "before= for the page before this one; null on the oldest.",
            },
        },
    },
    "SearchResults": {
        "type": "object",
        "required": ["sessions", "complete", "next_cursor"],
        "properties": {
            "sessions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "title", "channel", "match", "match_role", "last_activity"],
                    "properties": {
                        "id": STRING,
                        "title": STRING,
                        "channel": STRING,
                        "match": STRING,
                        "match_role": {"type": ["string", "null"]},
                        "last_activity": TIME,
                    },
                },
            },
            "complete": {
                "type": "boolean",
                "description": "true when every session was looked at; false when the "
                "search stopped at limit hits or at the bound of its work.",
            },
            "next_cursor": {
                "type": ["string", "null"],
                "description": "null when complete; else cursor= for the same search to "
                "go on where this one stopped.",
            },
        },
    },
    "Export": {
        "type": "object",
        "required": ["session", "messages"],
        "properties": {
            "session": ref("Session"),
            "messages": {"type": "array", "items": ref("Message")},
        },
    },
}

LIMIT = {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}

IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": STRING,
    "description": "The ETag of an earlier answer to this same request: while no session "
    "of the namespace has changed, the answer is 304 with no body, after reading only the "
    "namespace's version.",
}
ETAG = {
    "ETag": {
        "description": "Changes whenever any session of the namespace changes (and when a "
        "session leaves the active window); names this request's answer only.",
        "schema": STRING,
    }
}


def tagged(responses: dict[str, Any]) -> dict[str, Any]:
    """An answer that carries an ETag, and its 304."""
    responses["200"]["headers"] = ETAG
    not_modified = {"description": "Nothing changed since the ETag sent.", "headers": ETAG}
    return {"200": responses["200"], "304": not_modified}


FLAG = {"type": "string", "enum": ["true", "false"]}
RESERVED = (
    "A new session's id cannot be search, counts or bulk (422): /api/sessions/search, "
    "/counts and /bulk are routes of their own, so such a session could not be read back."
)
LIST = (
    "Archived sessions are left out unless archived is true or any. **Read by rank** "
    "(O(log N + limit), offset or cursor, an exact total): a query that one sorted set "
    "holds, that is at most one of channel, pinned=true, tag and user, with archived "
    "false or true, with or without active and reader. **Bounded walk** (every other "
    "query: two or more of channel, pinned=true, tag and user; pinned=false; "
    "archived=any; unread=true): the walk goes through the smallest of the filters' "
    "sorted sets from the cursor on, checks the other filters on each session, and stops "
    "at limit matches "
    "or after 500 sessions, whichever comes first. A walked page may therefore hold fewer "
    "than limit sessions, even none, and still have a next_cursor: follow next_cursor "
    "until it is null. A walk takes cursor, not offset (an offset other than 0 answers "
    "422). total is exact, but for two or more of channel, pinned=true, tag and user, "
    "pinned=false with one of them, and unread=true: there total is an upper bound (the "
    "size of the set walked) and the answer says total_exact: false."
)


def ok(code: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response.update(json_body(schema))
    return {code: response}


# The browser's routes (service/console.py): no token, their own security headers.
TEXT = {"schema": STRING}
NOT_MODIFIED = {"description": "Unchanged since the ETag sent in If-None-Match."}


def location(description: str, target: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if target is not None:
        schema["const"] = target
    return {"description": description, "headers": {"Location": {"schema": schema}}}


def browser_page(summary: str, responses: dict[str, Any], path: str | None = None) -> Any:
    get: dict[str, Any] = {"summary": summary, "security": [], "responses": responses}
    if path is not None:
        get["parameters"] = [
            {"name": "path", "in": "path", "required": True, "schema": STRING, "description": path}
        ]
    return {"get": get}


NO_FILE = {"description": "No such file.", **json_body(ref("Error"))}
BROWSER_PATHS: dict[str, Any] = {
    "/": browser_page(
        "Goes to the operator console.",
        {"302": location("To console/ (relative, so that a path prefix is kept).", "console/")},
    ),
    "/console": browser_page(
        "Goes to the operator console (with its trailing slash).",
        {"301": location("To console/.", "console/")},
    ),
    "/console/{path}": browser_page(
        "The operator console: its page (an empty path) and its files, served from the "
        "package. No token is needed to load them; the console asks for one and sends it "
        "to /api itself.",
        {
            "200": {
                "description": "The file, with a Content-Security-Policy that allows scripts "
                "and styles from this origin only, frame-ancestors 'none', "
                "X-Content-Type-Options: nosniff and Referrer-Policy: no-referrer.",
                "content": {
                    kind: TEXT
                    for kind in ("text/html", "text/javascript", "text/css", "image/svg+xml")
                },
            },
            "304": NOT_MODIFIED,
            "404": NO_FILE,
        },
        "A file of the console, such as app.js; empty for the page.",
    ),
    "/docs": browser_page(
        "This document rendered for people (Swagger UI, served from the swagger-ui-py "
        "package). Trying a request asks for a token.",
        {
            "200": {"description": "The page.", "content": {"text/html": TEXT}},
            "304": NOT_MODIFIED,
        },
    ),
    "/docs/{path}": browser_page(
        "What /docs loads: openapi.json (this document, without a token), Swagger UI's "
        "files under swagger/, and the page's own script and style.",
        {
            "200": {
                "description": "The file.",
                "content": {
                    "application/json": {"schema": OBJECT},
                    **{kind: TEXT for kind in ("text/javascript", "text/css", "text/plain")},
                },
            },
            "301": location("docs/ goes to ../docs."),
            "304": NOT_MODIFIED,
            "404": NO_FILE,
        },
        "openapi.json, docs.js, docs.css, or swagger/<file>; empty redirects to /docs.",
    ),
}

PATHS: dict[str, Any] = {
    "/api/sessions": {
        "get": operation(
            "List sessions, most recently active first.",
            "sessions:read",
            tagged(ok("200", "A page of sessions.", ref("SessionList"))),
            ("400", "422"),
            parameters=[
                IF_NONE_MATCH,
                query("limit", LIMIT, "Sessions per page."),
                query(
                    "offset",
                    {"type": "integer", "minimum": 0, "maximum": 1000000000},
                    "Skip this many (not with cursor).",
                ),
                query("cursor", STRING, "next_cursor of the previous page (not with offset)."),
                query("channel", CHANNEL, "Only this channel."),
                query(
                    "active",
                    {"type": "string", "enum": ["true", "false"]},
                    "Only sessions with (or without) recent activity.",
                ),
                query(
                    "archived",
                    {"type": "string", "enum": ["false", "true", "any"], "default": "false"},
                    "false: sessions not archived; true: archived ones; any: both.",
                ),
                query("pinned", FLAG, "Only pinned (true) or unpinned (false) sessions."),
                query("tag", TAG, "Only sessions with this tag."),
                query("user", USER, "Only this person's sessions, on every channel."),
                query(
                    "reader",
                    READER,
                    "Each item gains unread_count: the messages this reader has not read.",
                ),
                query(
                    "unread",
                    FLAG,
                    "true: only sessions with messages the reader has not read (needs reader).",
                ),
            ],
            description=LIST,
        ),
        "post": operation(
            "Create a session.",
            "sessions:write",
            ok("201", "The new session.", ref("Session")),
            ("400", "409", "413", "415", "422"),
            body=ref("NewSession"),
            description=RESERVED,
        ),
    },
    "/api/sessions/search": {
        "get": operation(
            "Search titles and message content, most recent sessions first.",
            "sessions:read",
            ok(
                "200",
                "Matching sessions, and whether every session was looked at.",
                ref("SearchResults"),
            ),
            ("400", "422"),
            parameters=[
                query("q", {"type": "string", "maxLength": 200}, "Text to find (any case)."),
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    "Most hits.",
                ),
                query(
                    "cursor",
                    STRING,
                    "next_cursor of the previous answer to the same search: go on where it "
                    "stopped.",
                ),
            ],
            admitted=True,
            description="It looks in the sessions that are not archived. "
            "A search goes in bounded steps (50 sessions, 400 messages or "
            "64 KiB of stored messages each, 8 KiB for a query beyond ASCII), at most 16 "
            "a request; an answer that stopped before looking at every session says "
            "complete: false and gives a next_cursor.",
        ),
    },
    "/api/sessions/counts": {
        "get": operation(
            "Counts of sessions: in all, active, archived, pinned, per channel and per "
            "tag; unread for a reader; activity per hour.",
            "sessions:read",
            ok("200", "The counts.", ref("Counts")),
            ("422",),
            parameters=[
                query(
                    "hours",
                    {"type": "integer", "minimum": 0, "maximum": 168, "default": 0},
                    "Add `activity`: per channel, the sessions whose latest activity falls "
                    "in each of the last `hours` hours (the current hour last).",
                ),
                query(
                    "reader",
                    READER,
                    "Add `unread`, overall and per channel: the sessions with messages this "
                    "reader has not read.",
                ),
            ],
            description="Every count but archived counts the sessions that are not "
            "archived. One round trip, whose work grows with the number of channels "
            "(times hours) and tags, never with the number of sessions.",
        ),
    },
    "/api/events": {
        "get": operation(
            "The namespace's change feed, as Server-Sent Events: replayed after a position, "
            "then live.",
            "sessions:read",
            {
                "200": {
                    "description": "text/event-stream, open until the client leaves or the "
                    "service stops. Each event has an id: (its position in the namespace's "
                    "stream), an event: (session.created, session.updated, session.deleted "
                    "or reset) and one data: line of JSON: {session, message?} for created "
                    "and updated (session as a list item), {session: {id}} for deleted, "
                    "{detail} for reset (the position asked for is no longer kept: read the "
                    "list again, then go on from the reset's id). A comment line comes at "
                    "least every events_heartbeat seconds (default 15). A client too far "
                    "behind is disconnected; it resumes with Last-Event-ID.",
                    "content": {"text/event-stream": {"schema": STRING}},
                }
            },
            ("400", "422"),
            parameters=[
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": STRING,
                    "description": "Replay every event after this id, then go on live "
                    "(0: every event still kept). A reconnecting EventSource sends it; it "
                    "wins over since.",
                },
                query("since", STRING, "As Last-Event-ID, for a client that cannot send it."),
                query("channel", CHANNEL, "Only events of sessions of this channel."),
                query(
                    "session_id",
                    {"type": "string", "minLength": 1, "maxLength": 256},
                    "Only events of this session.",
                ),
            ],
            description="Without Last-Event-ID or since, the stream starts with new events. "
            "A malformed id answers 400.",
        ),
    },
    "/api/messages": {
        "post": operation(
            "Ingest up to 1000 messages; one result per item.",
            "sessions:write",
            ok("200", "One result per item, in order.", ref("BatchResults")),
            ("400", "413", "415", "422"),
            body=ref("Batch"),
            admitted=True,
        ),
    },
    "/api/sessions/{session_id}": {
        "parameters": [SESSION_ID],
        "get": operation(
            "One session.",
            "sessions:read",
            tagged(ok("200", "The session.", ref("Session"))),
            ("404", "422"),
            parameters=[IF_NONE_MATCH],
        ),
        "patch": operation(
            "Change a session: any of title, pinned, archived, tags and metadata.",
            "sessions:write",
            ok("200", "The session as it is now.", ref("Session")),
            ("400", "404", "413", "415", "422"),
            body=ref("SessionChange"),
            description="Tags: at most 20, each 1-64 letters, digits, _, -, . or :; "
            "repeats are dropped. A value that breaks a rule answers 422 naming it. A "
            "change to what the session already is writes nothing and emits no event. "
            "None of these changes moves updated_at or the session's place in the list.",
        ),
        "delete": operation(
            "Delete a session with all its messages.",
            "sessions:delete",
            ok("200", "Deleted.", ref("Status")),
            ("404", "422"),
        ),
    },
    "/api/sessions/{session_id}/title": {
        "parameters": [SESSION_ID],
        "post": operation(
            "Rename a session (PocketPaw's shape).",
            "sessions:write",
            ok("200", "Renamed.", ref("Status")),
            ("400", "404", "413", "415", "422"),
            body=ref("Title"),
        ),
        "put": operation(
            "Rename a session (PocketPaw's shape).",
            "sessions:write",
            ok("200", "Renamed.", ref("Status")),
            ("400", "404", "413", "415", "422"),
            body=ref("Title"),
        ),
    },
    "/api/sessions/{session_id}/messages": {
        "parameters": [SESSION_ID],
        "post": operation(
            "Ingest one message; creates the session on its first message.",
            "sessions:write",
            {
                **ok("201", "Stored.", ref("Ingested")),
                **ok("200", "This message id was stored before; nothing changed.", ref("Ingested")),
            },
            ("400", "413", "415", "422"),
            body=ref("NewMessage"),
            description=RESERVED,
        ),
        "get": operation(
            "History: the newest page first, each page in order.",
            "sessions:read",
            ok("200", "A page of messages.", ref("History")),
            ("400", "404", "422"),
            parameters=[
                query("limit", LIMIT, "Most messages per page (a page holds 256 KiB at most)."),
                query("before", STRING, "next_cursor of the previous page."),
            ],
            admitted=True,
        ),
    },
    "/api/sessions/{session_id}/read": {
        "parameters": [SESSION_ID],
        "post": operation(
            "Mark a session read for a reader.",
            "sessions:write",
            ok("200", "The session.", ref("Session")),
            ("400", "404", "413", "415", "422"),
            body=ref("ReadMark"),
            description="The reader (1-64 characters) has read message_count messages "
            "of the session, or all it has now; the list with ?reader= then counts "
            "unread_count from there.",
        ),
    },
    "/api/sessions/bulk": {
        "post": operation(
            "One action over up to 1000 sessions.",
            "sessions:write",
            ok("200", "What the action found and did.", ref("BulkOutcome")),
            ("400", "403", "413", "415", "422"),
            body=ref("Bulk"),
            admitted=True,
            description="Each session's change is atomic and emits its event, as a "
            "PATCH or DELETE would; 100 sessions a script call. delete needs the "
            "`sessions:delete` scope too (403 without). dry_run changes nothing.",
        ),
    },
    "/api/users/{user}": {
        "parameters": [
            {
                "name": "user",
                "in": "path",
                "required": True,
                "description": "The person's id, as messages gave it, percent-encoded.",
                "schema": USER,
            }
        ],
        "delete": operation(
            "Erase a person: delete every session of theirs in the namespace.",
            "sessions:delete",
            ok("200", "The sessions deleted.", ref("Erased")),
            ("422",),
            admitted=True,
            description="Every session with this user, on every channel, archived or "
            "not, with its messages, read marks and index entries, 100 sessions a step; "
            "then the change feed's events of those sessions. Repeating it is safe (it "
            "answers deleted: 0). Another namespace's person of the same id is untouched.",
        ),
    },
    "/api/sessions/{session_id}/export": {
        "parameters": [SESSION_ID],
        "get": operation(
            "The whole session as a download.",
            "sessions:read",
            {
                "200": {
                    "description": "The export (Content-Disposition: attachment), streamed "
                    "in bounded steps; when Redis fails after it began, the download is cut "
                    "short (its chunked body never ends), never closed as if whole.",
                    "headers": {"Content-Disposition": {"schema": STRING}},
                    "content": {
                        "application/json": {"schema": ref("Export")},
                        "text/markdown": {"schema": STRING},
                    },
                }
            },
            ("404", "422"),
            parameters=[
                query(
                    "format",
                    {"type": "string", "enum": ["json", "md"], "default": "json"},
                    "json or md.",
                )
            ],
            admitted=True,
        ),
    },
    "/api/export": {
        "get": operation(
            "The namespace as NDJSON: a header line, then one session a line with its "
            "messages, most recently active first.",
            "sessions:read",
            {
                "200": {
                    "description": "chatsessions-ndjson version 1 (docs/operations.md, "
                    "Export), streamed in bounded steps as the client reads; when Redis "
                    "fails after it began, the answer is cut short (its chunked body never "
                    "ends), never closed as if whole.",
                    "headers": {"Content-Disposition": {"schema": STRING}},
                    "content": {"application/x-ndjson": {"schema": STRING}},
                }
            },
            ("422",),
            parameters=[
                query(
                    "updated_since",
                    STRING,
                    "Only sessions updated at or after this time: RFC 3339 (UTC when it has "
                    "no zone) or epoch seconds.",
                )
            ],
            admitted=True,
        ),
    },
    "/api/openapi.json": {
        "get": operation("This document.", None, ok("200", "OpenAPI 3.1.", OBJECT), ()),
    },
    "/api/whoami": {
        "get": operation(
            "Who the token is: its name, namespace and scopes.",
            None,
            ok(
                "200",
                "The token's name (a console marks sessions read as this reader), the "
                "namespace it sees and its scopes.",
                {
                    "type": "object",
                    "required": ["name", "namespace", "scopes"],
                    "properties": {
                        "name": STRING,
                        "namespace": STRING,
                        "scopes": {"type": "array", "items": STRING},
                    },
                },
            ),
            (),
        ),
    },
    "/healthz": {
        "get": {
            "summary": "The process is alive.",
            "security": [],
            "responses": ok("200", "Alive.", ref("Status")),
        }
    },
    "/readyz": {
        "get": {
            "summary": "Redis takes a write now.",
            "description": "Runs a tiny script that writes (the key cs:readiness-probe, "
            "which expires after 10 s): ready only when Redis answers in time and can "
            "write now.",
            "security": [],
            "responses": {
                **ok("200", "Ready.", ref("Status")),
                "503": {
                    "description": "Not ready: " + ERRORS["503"],
                    "headers": retry_after(),
                    **json_body(ref("Error")),
                },
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics.",
            "security": [],
            "responses": {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": STRING}},
                }
            },
        }
    },
}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "chatsessions",
        "version": "0.1.0",
        "description": "The session index for multi-channel chat assistants.",
    },
    "servers": [{"url": "http://localhost:8000"}],
    "security": [{"bearer": []}],
    "paths": {**PATHS, **BROWSER_PATHS},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
    },
}

if __name__ == "__main__":
    sys.stdout.buffer.write(orjson.dumps(DOCUMENT, option=orjson.OPT_INDENT_2) + b"\n")
