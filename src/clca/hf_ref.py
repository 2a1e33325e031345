"""`hf:` references to files of a Hugging Face dataset in a config: parsed here once.

    hf:OWNER/DATASET/FILE   one file of a dataset (norms: hf:cmu-lti/sotopia-pi/used_prompt.csv)
    hf:OWNER/DATASET        a whole dataset (Sotopia's profiles)
    hf                      the default dataset of the setting that takes one

The stage that reads the reference downloads it when it runs (into the Hugging Face cache, once); the
checks before a run (`clca.preflight`) leave such references alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PREFIX = "hf:"


@dataclass(frozen=True)
class HfRef:
    repo: str | None  # OWNER/DATASET; None: the setting's default dataset (a bare `hf`)
    file: str | None  # the path inside the dataset; None: the whole dataset


def is_hf_ref(spec: str | Path) -> bool:
    s = str(spec).strip()
    return s == "hf" or s.startswith(PREFIX)


def parse_hf_ref(spec: str | Path) -> HfRef | None:
    """The parts of an `hf:` reference, or None when spec is not one (a local path). Empty segments
    ('hf:a//b') leave the parts to the caller's check: `repo` None or `file` '' then."""
    s = str(spec).strip()
    if not is_hf_ref(s):
        return None
    parts = s[len(PREFIX) :].strip().strip("/").split("/") if s != "hf" else []  # not a record key
    if not parts or parts == [""]:
        return HfRef(None, None)
    if len(parts) < 2 or not all(parts[:2]):
        return HfRef(None, "/".join(parts))
    return HfRef("/".join(parts[:2]), "/".join(parts[2:]) or None)
