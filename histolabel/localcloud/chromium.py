"""How the browser tests and the overlay benchmark start Debian's headless Chromium.

Background networking stays off: this machine's closed network refuses Chromium's own
connections, many at a time, and they slow every start.
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
