"""Stand-in for the Lambda runtime's bootstrap, run as a script in a fresh process (see local_cloud.invoke_like_lambda).

argv: REQUEST RESPONSE. REQUEST holds the function's configuration as the Lambda API returned it and the event.
Imports the configured handler (`module.function`) from the task root, calls it once with the event and a context
built from the configuration, and writes `{"result", "module_file"}` to RESPONSE (stdout stays the function's logs).
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Context:
    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def main(request_path: str, response_path: str) -> None:
    request = json.loads(Path(request_path).read_text())
    configuration = request["configuration"]
    module_name, function_name = configuration["Handler"].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), function_name)
    context = Context(
        function_name=configuration["FunctionName"],
        memory_limit_in_mb=int(configuration.get("MemorySize", 128)),
        invoked_function_arn=configuration["FunctionArn"],
        aws_request_id=str(uuid.uuid4()),
    )
    result = handler(request["event"], context)
    package = sys.modules[module_name.split(".", 1)[0]]
    Path(response_path).write_text(json.dumps({"result": result, "module_file": package.__file__}, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
