"""Azure Functions blueprints: one per trigger family. Thin: parse, call a service, map the result."""
