"""LiteLLM callback for the test proxy: one JSON line per finished call in LITELLM_RECORD_FILE,
with what LiteLLM made of the request (its tags, the key it authenticated, memgate's headers),
so that tests/litellm_gateway.rs can check what the gateway saw."""

import json
import os
import threading

from litellm.integrations.custom_logger import CustomLogger

_lock = threading.Lock()


def _record(kwargs, status):
    payload = kwargs.get("standard_logging_object") or {}
    metadata = payload.get("metadata") or {}
    headers = metadata.get("requester_custom_headers") or {}
    line = {
        "status": status,
        "call_type": payload.get("call_type") or kwargs.get("call_type"),
        "model": payload.get("model_group") or kwargs.get("model"),
        "stream": bool(payload.get("stream")),
        "tags": payload.get("request_tags") or [],
        "user_api_key_alias": metadata.get("user_api_key_alias"),
        "user_api_key_hash": metadata.get("user_api_key_hash"),
        "memgate_purpose": headers.get("x-memgate-purpose"),
        "memgate_org": headers.get("x-memgate-org"),
        "prompt_tokens": payload.get("prompt_tokens"),
    }
    path = os.environ.get("LITELLM_RECORD_FILE")
    if not path:
        return
    with _lock, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


class Recorder(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        _record(kwargs, "success")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        _record(kwargs, "failure")


handler = Recorder()
