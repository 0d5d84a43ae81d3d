"""`python -m providers.xero.emulator --port N`."""

import sys

from providers.xero.emulator import main

sys.exit(main(sys.argv[1:]))
