#!/usr/bin/env python3
"""Print an access token from tokend, asked over D-Bus.

    python3 get_token.py PROVIDER [--system]

Uses jeepney (pure Python; Debian/Ubuntu: apt install python3-jeepney,
elsewhere: pip install jeepney). Exit status 0 with the token on stdout, or
1 with the D-Bus error name and message on stderr, for example
org.tokend.Error.LoginRequired when `tokenctl login PROVIDER` is needed.
"""

import sys

from jeepney import DBusAddress, DBusErrorResponse, new_method_call
from jeepney.io.blocking import open_dbus_connection
from jeepney.wrappers import unwrap_msg

BROKER = DBusAddress(
    "/org/tokend/Broker1",
    bus_name="org.tokend.Broker1",
    interface="org.tokend.Broker1",
)


def get_token(provider: str, bus: str = "SESSION") -> tuple[str, int]:
    """Return (access_token, expires_at_unix); raises DBusErrorResponse."""
    with open_dbus_connection(bus=bus) as connection:
        call = new_method_call(BROKER, "GetToken", "s", (provider,))
        # unwrap_msg raises DBusErrorResponse for an error reply.
        token, expires_at = unwrap_msg(connection.send_and_get_reply(call))
        return token, expires_at


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    bus = "SYSTEM" if "--system" in sys.argv[2:] else "SESSION"
    try:
        token, _expires_at = get_token(sys.argv[1], bus)
    except DBusErrorResponse as error:
        message = error.data[0] if error.data else ""
        print(f"{error.name}: {message}", file=sys.stderr)
        return 1
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
