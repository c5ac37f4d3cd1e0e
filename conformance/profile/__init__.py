"""The deployment profile: load it, describe it, check it.

loader.py    load_profile / parse_profile: YAML -> frozen Profile (profile_model.py)
reader.py    a regular file -> one YAML document, within bounds (size, aliases, merges, nesting)
values.py    typed values and one-line errors naming file, key path and problem
sections.py  the live-target sections: lab, probes, stimuli, host
shape.py     every key as data: the loader's key lists and spellings, the schema's source
schema.py    the JSON Schema for editors, generated from shape.py (profile.schema.json)
check.py     `profile check`: what a valid profile means, and mistakes that are not errors
"""

from __future__ import annotations

from conformance.profile.loader import load_profile, parse_profile
from conformance.profile.reader import MAX_PROFILE_BYTES

__all__ = ["MAX_PROFILE_BYTES", "load_profile", "parse_profile"]
