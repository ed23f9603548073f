"""The Anthropic Python SDK's Messages API as a real application uses it through memgate:
memory_id through extra_body, streaming and not. Run with MEMGATE_URL, MEMGATE_KEY, MOCK_URL,
MEMORY_ID and STREAM ("1"/"0") set; prints one JSON line per turn with what the SDK returned,
what the upstream received and the response headers memgate sent.

MODE=bad_field sends a malformed memory_id once and prints the error the SDK raised."""

import json
import os
import sys

import anthropic

from sdk_conversation import expect_bad_request, last_upstream, two_turns

key = os.environ["MEMGATE_KEY"]
# This release sends the key as `Authorization: Bearer`; other Anthropic clients send
# `x-api-key`, which memgate reads too (tests/api_shapes.rs).
client = anthropic.Anthropic(base_url=os.environ["MEMGATE_URL"], api_key=key)
mock = os.environ["MOCK_URL"]
memory_id = os.environ.get("MEMORY_ID", "")
stream = os.environ.get("STREAM") == "1"
mode = os.environ.get("MODE", "")


def text_of(message):
    return "".join(block.text for block in message.content if block.type == "text")


def ask(content, store):
    """The SDK's reply text and memgate's response headers (lower-case names)."""
    extra = {"memory_id": memory_id}
    if not store:
        extra["store_memory"] = False
    request = dict(
        model="mock-model",
        max_tokens=256,
        system="Be brief.",
        messages=[{"role": "user", "content": content}],
        extra_body=extra,
    )
    if stream:
        with client.messages.stream(**request) as s:
            headers = {k.lower(): v for k, v in s.response.headers.items()}
            reply = "".join(s.text_stream)
            final = s.get_final_message()
        if text_of(final) != reply:
            error = {"error": "final message differs", "final": text_of(final)}
            print(json.dumps(error), flush=True)
            sys.exit(1)
        return reply, headers
    raw = client.messages.with_raw_response.create(**request)
    headers = {k.lower(): v for k, v in raw.headers.items()}
    return text_of(raw.parse()), headers


def system_text(system):
    if isinstance(system, str):
        return system
    return " ".join(b.get("text", "") for b in system or [] if isinstance(b, dict))


if mode == "bad_field":
    expect_bad_request(
        lambda: client.messages.create(
            model="mock-model",
            max_tokens=256,
            messages=[{"role": "user", "content": "Hello."}],
            extra_body={"memory_id": 42},
        ),
        anthropic.BadRequestError,
    )

two_turns(
    ask,
    lambda: last_upstream(mock, "/messages"),
    "I live in Lisbon and I work on the Atlas project.",
    [{"type": "text", "text": "Which city do I live in?"}],
    lambda upstream: "Lisbon" in system_text(upstream.get("system")),
)
