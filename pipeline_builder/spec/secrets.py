"""Secrets in environment variables: found by name and by value before anything is written.

`trial.env` is written in clear text into pipeline.yaml and shown in the Vertex console, so
a variable that looks like a secret is refused. Names are checked with this module's rules
and detect-secrets' keyword denylist; values with detect-secrets' plugins (provider token
formats, credentials in URLs, private keys, JWTs, high-entropy strings). detect-secrets is
imported only when there is an env to check. The value itself never appears in an error.
"""

import re
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

# Name parts that mean a secret. Substrings: anywhere in the name.
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.I)
# Whole words between underscores (AUTH but not AUTHOR, PAT but not PATH).
_SECRET_WORD = re.compile(r"(?:^|_)(?:AUTH|AUTHN|AUTHZ|AUTHORIZATION|PAT|KEY|KEYS|PASS|PW|CREDS|COOKIE|DSN)(?:_|$)", re.I)
# Found in the network address of a host, not a credential.
_NOT_SECRETS = frozenset({"Public IP (ipv4)"})
# Absolute paths and URIs: judged by provider formats and passwords in them, not by entropy.
_LOCATION = re.compile(r"^(?:/|[A-Za-z][A-Za-z0-9+.-]*://)")
_RANDOMNESS = frozenset({"Base64 High Entropy String", "Hex High Entropy String"})
# The name the value is scanned under: detect-secrets reads `NAME: "VALUE"` as YAML.
_SCANNED_AS = "trial-env.yaml"


@lru_cache(maxsize=4096)
def secret_name(name: str) -> Optional[str]:
    """Why `name` names a secret (the matched word), or None."""
    from detect_secrets.plugins.keyword import DENYLIST

    for pattern in (_SECRET_NAME, _SECRET_WORD, re.compile("|".join(DENYLIST), re.I)):
        match = pattern.search(name)
        if match:
            return match.group(0).strip("_")
    return None


@lru_cache(maxsize=4096)
def secret_kinds(name: str, value: str) -> Tuple[str, ...]:
    """What detect-secrets' plugins find in `NAME: "VALUE"` (their types, e.g. "GitHub Token"),
    sorted; empty when nothing. Cached: a sweep's trials mostly share their env."""
    line = f'{name}: "{value}"'
    kinds = {found.type for plugin in _plugins() for found in plugin.analyze_line(filename=_SCANNED_AS, line=line)}
    if _LOCATION.match(value):
        kinds -= _RANDOMNESS  # a long path's many letters are not randomness; its formats still count
    return tuple(sorted(kinds))


@lru_cache(maxsize=1)
def _plugins() -> List[Any]:
    """Every detect-secrets plugin at its default settings (entropy limits included); their
    `analyze_line` never contacts a provider to verify a finding unless detect-secrets'
    global settings ask for it, which this process never does."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    kinds: Dict[str, Any] = get_mapping_from_secret_type_to_class()
    return [kind() for name, kind in kinds.items() if name not in _NOT_SECRETS]
