"""`python -m providers.quickbooks.emulator --port N`."""

import sys

from providers.quickbooks.emulator import main

sys.exit(main(sys.argv[1:]))
