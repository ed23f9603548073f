"""The OpenAI Python SDK's Responses API as a real application uses it through memgate:
memory_id through extra_body, streaming and not. Run with MEMGATE_URL, MEMGATE_KEY, MOCK_URL,
MEMORY_ID and STREAM ("1"/"0") set; prints one JSON line per turn with what the SDK returned,
what the upstream received and the response headers memgate sent.

MODE=bad_field sends a malformed memory_id once and prints the error the SDK raised."""

import json
import os
import sys

from openai import BadRequestError, OpenAI

from sdk_conversation import expect_bad_request, last_upstream, two_turns

client = OpenAI(base_url=os.environ["MEMGATE_URL"] + "/v1", api_key=os.environ["MEMGATE_KEY"])
mock = os.environ["MOCK_URL"]
memory_id = os.environ.get("MEMORY_ID", "")
stream = os.environ.get("STREAM") == "1"
mode = os.environ.get("MODE", "")


def ask(input, store):
    """The SDK's reply text and memgate's response headers (lower-case names)."""
    extra = {"memory_id": memory_id}
    if not store:
        extra["store_memory"] = False
    if stream:
        with client.responses.with_streaming_response.create(
            model="mock-model", input=input, stream=True, extra_body=extra
        ) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            deltas = []
            completed = False
            for event in response.parse():
                if event.type == "response.output_text.delta":
                    deltas.append(event.delta)
                elif event.type == "response.completed":
                    completed = True
        if not completed:
            print(json.dumps({"error": "no response.completed event"}), flush=True)
            sys.exit(1)
        return "".join(deltas), headers
    raw = client.responses.with_raw_response.create(
        model="mock-model", input=input, extra_body=extra
    )
    headers = {k.lower(): v for k, v in raw.headers.items()}
    return raw.parse().output_text, headers


def remembered(upstream):
    instructions = upstream.get("instructions") or ""
    return "Lisbon" in (instructions if isinstance(instructions, str) else json.dumps(instructions))


if mode == "bad_field":
    expect_bad_request(
        lambda: client.responses.create(
            model="mock-model", input="Hello.", extra_body={"memory_id": 42}
        ),
        BadRequestError,
    )

two_turns(
    ask,
    lambda: last_upstream(mock, "/responses"),
    "I live in Lisbon and I work on the Atlas project.",
    [{"role": "user", "content": [{"type": "input_text", "text": "Which city do I live in?"}]}],
    remembered,
)
