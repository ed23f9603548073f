"""LiteLLM custom auth for the test proxy: the virtual keys a real deployment keeps in its
database, from MEMGATE_LITELLM_KEYS ("alias=key,alias=key"). The alias is what LiteLLM logs
as user_api_key_alias, so the recorder can tell the application's calls from memgate's."""

import os

from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth


def _keys():
    keys = {}
    for pair in os.environ.get("MEMGATE_LITELLM_KEYS", "").split(","):
        alias, _, key = pair.strip().partition("=")
        if alias and key:
            keys[key] = alias
    master = os.environ.get("LITELLM_MASTER_KEY")
    if master:
        keys.setdefault(master, "master")
    return keys


KEYS = _keys()


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    alias = KEYS.get(api_key)
    if alias is None:
        raise Exception("unknown key")
    return UserAPIKeyAuth(api_key=api_key, key_alias=alias)
