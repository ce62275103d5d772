"""Lambda entry points: thin switchboards around the Guard (parse, call, log, emit metrics)."""
