"""The one Jinja2 environment for day-0 templates, Cisco and Juniper alike.

Sandboxed (``jinja2.sandbox.SandboxedEnvironment``: a template cannot reach
Python internals), ``StrictUndefined`` (a missing variable is an error, never
an empty string in a config), trailing newlines kept, no HTML autoescaping
(configs are not HTML).
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment


def template_environment(folder: Path | str) -> SandboxedEnvironment:
    """A sandboxed, StrictUndefined environment loading templates from ``folder``."""
    return SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(folder)),
                                undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                autoescape=False)
