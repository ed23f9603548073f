"""The OpenAI Python SDK as a real application uses memgate: memory_id through extra_body,
streaming and not. Run by tests/openai_sdk.rs with MEMGATE_URL, MEMGATE_KEY and MOCK_URL set;
prints one JSON line per turn with what the SDK returned and what the upstream received."""

import json
import os
import sys
import time
import urllib.request

from openai import OpenAI

client = OpenAI(base_url=os.environ["MEMGATE_URL"] + "/v1", api_key=os.environ["MEMGATE_KEY"])
mock = os.environ["MOCK_URL"]
memory_id = os.environ["MEMORY_ID"]
stream = os.environ["STREAM"] == "1"


def ask(text, store=True):
    extra = {"memory_id": memory_id}
    if not store:
        extra["store_memory"] = False
    messages = [{"role": "user", "content": text}]
    if stream:
        chunks = client.chat.completions.create(
            model="mock-model", messages=messages, stream=True, extra_body=extra
        )
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answer = client.chat.completions.create(model="mock-model", messages=messages, extra_body=extra)
    return answer.choices[0].message.content


def last_upstream_chat():
    with urllib.request.urlopen(mock + "/__mock/requests") as r:
        requests = json.load(r)
    chats = [
        json.loads(q["body"])
        for q in requests
        if q["path"].endswith("/chat/completions")
        and not any(k == "x-memgate-purpose" for k, _ in q["headers"])
    ]
    return chats[-1]


reply = ask("I live in Lisbon and I work on the Atlas project.")
print(json.dumps({"turn": 1, "reply": reply, "upstream": last_upstream_chat()}), flush=True)

# The turn is stored after the answer; the next turn remembers it once ingested.
deadline = time.time() + 20
while True:
    reply = ask("Which city do I live in?", store=False)
    upstream = last_upstream_chat()
    system = next((m["content"] for m in upstream["messages"] if m["role"] == "system"), "")
    if "Lisbon" in system or time.time() > deadline:
        break
    time.sleep(0.1)
print(json.dumps({"turn": 2, "reply": reply, "upstream": upstream}), flush=True)
sys.exit(0)
