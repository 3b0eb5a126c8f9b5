"""A subscriber in another process: ``python -m tests.celery.subscriber SESSION_ID``.

Builds the test project's app from the environment (as a worker would),
subscribes to every event, prints "ready", then one JSON line per event
(seq, session id, type), and exits once the given session has ended.
"""

from __future__ import annotations

import json
import sys

from tests.celery.project import ProjectConfig, make_project

#: The subscriber gives up after this long without an event.
IDLE_TIMEOUT_S = 60.0


def main(session_id: str) -> int:
    project = make_project(ProjectConfig.from_env())
    subscription = project.tracker.subscribe_to_events()
    print("ready", flush=True)
    while True:
        event = subscription.get(timeout=IDLE_TIMEOUT_S)
        if event is None:
            return 1
        line = {"seq": event.seq, "session_id": event.session_id, "type": event.event_type}
        print(json.dumps(line), flush=True)
        if event.session_id == session_id and event.event_type in (
            "SessionCompleted",
            "SessionFailed",
            "SessionCancelled",
        ):
            project.tracker.close()
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
