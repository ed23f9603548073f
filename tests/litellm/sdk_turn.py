"""One chat turn of an application on the OpenAI Python SDK, through memgate: memory_id and
store_memory in extra_body, streaming or not. Run by tests/litellm_gateway.rs with
MEMGATE_URL, MEMGATE_KEY, MEMORY_ID, STREAM and STORE set and the user's text as argument;
prints {"reply": ...}."""

import json
import os
import sys

from openai import OpenAI

client = OpenAI(base_url=os.environ["MEMGATE_URL"] + "/v1", api_key=os.environ["MEMGATE_KEY"])
extra = {"memory_id": os.environ["MEMORY_ID"], "store_memory": os.environ["STORE"] == "1"}
messages = [{"role": "user", "content": sys.argv[1]}]

if os.environ["STREAM"] == "1":
    chunks = client.chat.completions.create(
        model="mock-model", messages=messages, stream=True, extra_body=extra
    )
    reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
else:
    answer = client.chat.completions.create(model="mock-model", messages=messages, extra_body=extra)
    reply = answer.choices[0].message.content
print(json.dumps({"reply": reply}), flush=True)
