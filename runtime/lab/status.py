"""What a student did with each lab: where it was started, the last verdict.

One small JSON file, $VOS_STATE (default ~/.local/state/vos/labs.json,
under $XDG_STATE_HOME when set):

    {"lost_update": {"dir": "/home/me/lost_update", "file": ".../counter.py",
                     "verdict": "fail", "score": 25, "sha256": "...", "hints": 1}}

Written by `vos lab start`, `vos lab check` and `vos lab hint`; read by
`vos lab`.  A missing or unreadable file is an empty record, never an error:
the status is a convenience, the verdict is what `check` prints.
"""

import hashlib
import json
import os


def path():
    explicit = os.environ.get("VOS_STATE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "vos", "labs.json")


def load():
    try:
        with open(path(), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def update(lab, **fields):
    """Merge fields into lab's record (best effort: a read-only home is fine)."""
    data = load()
    data.setdefault(lab, {}).update(fields)
    p = path()
    try:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = p + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, p)
    except OSError:
        pass
    return data[lab]


def describe(record):
    """One word or two for `vos lab`'s status column."""
    if not record:
        return "not started"
    verdict = record.get("verdict")
    f = record.get("file")
    if verdict and f and os.path.isfile(f) and record.get("sha256") != _sha256(f):
        return "passed, changed since" if verdict == "pass" else "changed since the last check"
    if verdict == "pass":
        return "passed"
    if verdict in ("fail", "incomplete"):
        return f"{'failed' if verdict == 'fail' else 'incomplete'} ({record.get('score', 0)}/100)"
    return "started"


def _sha256(f):
    with open(f, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


__all__ = ["path", "load", "update", "describe"]
