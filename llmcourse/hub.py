"""One way to the Hugging Face Hub for the whole course: where it is, whether this machine may ask it,
and whether it answers. ``llmcourse.data``, ``llmcourse.bert`` and ``llmcourse.pretrained`` all ask here.

* **Where**: ``$HF_ENDPOINT`` (a mirror inside a workshop's room; ``huggingface_hub`` and ``transformers``
  read the same variable), else ``https://huggingface.co``.
* **May it ask**: not when an offline switch is set to a true value: ``HF_HUB_OFFLINE``,
  ``TRANSFORMERS_OFFLINE``, ``HF_DATASETS_OFFLINE`` or the course's own ``LLMCOURSE_OFFLINE``; any of
  them means the same here.
* **Is it here already**: :func:`cached`, a model in ``huggingface_hub``'s cache (no network needed).
* **Does it answer**: one HTTP request with a short timeout, so that an offline machine learns it in
  seconds instead of after a minute of a library's retries.

No notebook teaches this module: it is plumbing, kept in one place so that the three parts of the
course that download agree.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from .config import any_set

__all__ = ["DEFAULT_ENDPOINT", "OFFLINE_SWITCHES", "endpoint", "offline_switch", "unreachable", "cached"]

DEFAULT_ENDPOINT = "https://huggingface.co"
#: The environment variables that mark a machine offline (any one set to 1, true, yes or on).
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "LLMCOURSE_OFFLINE")


def endpoint() -> str:
    """The Hub's address: ``$HF_ENDPOINT`` without a trailing slash, else :data:`DEFAULT_ENDPOINT`."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or DEFAULT_ENDPOINT


def offline_switch() -> str | None:
    """The name of the first offline switch set on this machine (``"HF_HUB_OFFLINE"``...), else None."""
    return next((name for name in OFFLINE_SWITCHES if any_set(name)), None)


def unreachable(timeout: float = 3.0) -> str | None:
    """None when this machine may ask the Hub and it answers within ``timeout`` seconds (any HTTP status
    counts as an answer), else why not, in words a message can quote."""
    switch = offline_switch()
    if switch:
        return f"this machine is marked offline ({switch}=1)"
    url = endpoint()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return f"{url} did not answer ({getattr(exc, 'reason', exc)})"


def cached(name: str) -> bool:
    """True when the Hub model ``name`` is in this machine's ``huggingface_hub`` cache (its ``config.json`` at
    the default revision): then it loads with no network."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an invalid repo name, an old huggingface_hub: let from_pretrained say what is wrong
        return False
