"""Imported only by the emulator's launcher helper: gcpc's JobService client talks to the emulator.

The helper (a fork server, see launcher_tasks) imports gcpc's CustomJob launcher once and
forks a child per CustomJob task, which runs the launcher module as its compiled command
says. When a child's environment names the emulator in JOB_SERVICE_VARIABLE, every
`JobServiceClient` it builds gets that endpoint, the REST transport and anonymous
credentials in place of `{location}-aiplatform.googleapis.com`, gRPC and
`google.auth.default()`; every other argument (client_info, other client options) and all
of gcpc's own code stay as they are.

gcpc's launcher answers SIGTERM by sending a CancelCustomJob to the real Vertex endpoint
with the machine's default credentials (execution_context, `send_cancel_request`). Nothing
here may reach a non-loopback address, so the helper is started to stop its children
with SIGKILL only (LauncherTasks.server): the emulator cancels the CustomJobs itself
before it stops a launcher.
"""

import os
from typing import Any

from google.cloud.aiplatform_v1.services.job_service import JobServiceClient

from .launcher_tasks import JOB_SERVICE_VARIABLE

_original_init = JobServiceClient.__init__


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    endpoint = os.environ.get(JOB_SERVICE_VARIABLE)
    if endpoint:
        from google.api_core import client_options
        from google.auth.credentials import AnonymousCredentials

        given = kwargs.get("client_options")
        options = dict(given) if isinstance(given, dict) else dict(vars(given)) if given is not None else {}
        kwargs.update(
            client_options=client_options.from_dict({**options, "api_endpoint": endpoint}),
            transport="rest",
            credentials=AnonymousCredentials(),
        )
    _original_init(self, *args, **kwargs)


JobServiceClient.__init__ = _init  # type: ignore[method-assign]  # the one change to gcpc's code path: where its client connects
