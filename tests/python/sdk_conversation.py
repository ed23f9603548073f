"""What the SDK driver scripts share: reading what the mock gateway received, the refusal of a
bad field, and the two-turn conversation (a statement stored, then a question that must get it
back as context). Each script supplies its SDK's calls."""

import json
import sys
import time
import urllib.request


def last_upstream(mock, path_suffix):
    """The JSON body of the last application request (memgate's own calls left out) the mock
    received on a path ending with `path_suffix`."""
    with urllib.request.urlopen(mock + "/__mock/requests") as r:
        requests = json.load(r)
    matching = [
        json.loads(q["body"])
        for q in requests
        if q["path"].endswith(path_suffix)
        and not any(k == "x-memgate-purpose" for k, _ in q["headers"])
    ]
    return matching[-1]


def expect_bad_request(call, error_class):
    """Runs `call`, which must raise the SDK's 400 error; prints its status and parsed body."""
    try:
        call()
    except error_class as e:
        print(json.dumps({"status": e.status_code, "body": e.body}), flush=True)
        sys.exit(0)
    print(json.dumps({"error": "no BadRequestError raised"}), flush=True)
    sys.exit(1)


def two_turns(ask, upstream, statement, question, remembered):
    """Turn 1 states `statement`; turn 2 asks `question` (not stored) until the upstream request
    `remembered(upstream)` says the context arrived, or 20 s pass (the turn is stored after the
    answer, and ingested asynchronously). Prints one JSON line per turn."""
    reply, headers = ask(statement, True)
    turn = {"turn": 1, "reply": reply, "upstream": upstream(), "headers": headers}
    print(json.dumps(turn), flush=True)
    deadline = time.time() + 20
    while True:
        reply, headers = ask(question, False)
        received = upstream()
        if remembered(received) or time.time() > deadline:
            break
        time.sleep(0.1)
    turn = {"turn": 2, "reply": reply, "upstream": received, "headers": headers}
    print(json.dumps(turn), flush=True)
    sys.exit(0)
