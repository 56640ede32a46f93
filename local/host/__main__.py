"""Entry point: ``python -m local.host [--port 7071] [--app function_app:app]``."""

import sys

from local.host.cli import main

sys.exit(main())
