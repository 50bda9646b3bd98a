"""Sample script run in guestshell at the last PnP step (replace with your own).

It prints what the device is and a success marker the server can check
(SCRIPT_SUCCESS_MARKER = "PNP-SCRIPT-OK" in settings.py).
"""

import platform
import sys

print(f"guestshell python {sys.version.split()[0]} on {platform.node() or 'guestshell'}")
print("PNP-SCRIPT-OK")
