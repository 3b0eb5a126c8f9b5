"""What the monitoring front-ends share, whatever framework serves them.

The Starlette dashboard (:mod:`..web`) and the Django app (:mod:`..django`)
serve the same pages, JSON, live stream and celery-progress answers from
here: :mod:`.api` (the JSON API's replies), :mod:`.pages` (the pages, their
templates and scripts), :mod:`.live` (the SSE hub), :mod:`.compat` and
:mod:`.compat_reader` (celery-progress's answers), :mod:`.compat_stream`
(those answers, live), :mod:`.tracker_access` (the tracker, awaitable and
guarded). Nothing here imports a web framework.
"""

from __future__ import annotations

from .tracker_access import ActionHook

__all__ = ["ActionHook"]
