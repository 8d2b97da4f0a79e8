"""A D-Bus connection whose connecting process is gone: the process
connects, hands the connection to a child and exits, so the pid the bus
vouches for (dbus-daemon before 1.15.8 gives no pidfd) is free for another
process to take. Run as the caller's user with /usr/bin/python3.

    handed_connection.py ADDRESS NAME

The connecting process prints "pid N" and exits (reap it); its child waits
for a line on stdin, then calls GetToken NAME on the handed connection and
prints the answer as one JSON line.
"""
import json
import os
import sys

from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call
from jeepney.io.blocking import open_dbus_connection

conn = open_dbus_connection(bus=sys.argv[1])
if os.fork():
    print(f"pid {os.getpid()}", flush=True)
    os._exit(0)
sys.stdin.readline()
address = DBusAddress("/org/tokend/Broker1", bus_name="org.tokend.Broker1",
                      interface="org.tokend.Broker1")
reply = conn.send_and_get_reply(new_method_call(address, "GetToken", "s", (sys.argv[2],)))
if reply.header.message_type == MessageType.error:
    print(json.dumps({"error": reply.header.fields.get(HeaderFields.error_name),
                      "message": reply.body[0] if reply.body else ""}), flush=True)
else:
    print(json.dumps({"ok": repr(reply.body)}), flush=True)
