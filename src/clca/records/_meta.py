"""The names of the run database's meta entries (the `meta(name, value)` table): one owner for each.

clca_version, created_at    written when the database is made
config, config_hash         the run's config (`RunStore.bind_config`); a re-run with another hash is refused
stage:NAME                  a finished stage's StageResult (seconds, model calls, detail); `stage_meta`
culture/CODE                the culture profile a run used under CODE (custom profiles included); `culture_meta`
roleplay_config             the role-play settings pinned by the first run (a re-run with others is refused)
model_servers               what each `openai:` server was found to accept (shown by the report)
reused_from                 where a run's shared stages were copied from (`clca.reuse`), for people reading it
"""

from __future__ import annotations

CLCA_VERSION = "clca_version"
CREATED_AT = "created_at"
CONFIG = "config"
CONFIG_HASH = "config_hash"
ROLEPLAY_CONFIG = "roleplay_config"
MODEL_SERVERS = "model_servers"
REUSED_FROM = "reused_from"
CULTURE_META_PREFIX = "culture/"
STAGE_META_PREFIX = "stage:"


def stage_meta(stage: str) -> str:
    """The meta name of a finished stage's result: 'stage:roleplay'."""
    return f"{STAGE_META_PREFIX}{stage}"


def culture_meta(code: str) -> str:
    """The meta name of the culture profile a run used under a code: 'culture/EGY'."""
    return f"{CULTURE_META_PREFIX}{code}"
