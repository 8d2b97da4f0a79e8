"""A stub of the desktop's notification server (org.freedesktop.Notifications)
on a private bus: prints each Notify call's summary and body as a JSON line.
With --silent it never answers (a hung desktop shell), and prints "Notify"
per call it leaves unanswered.

    notification_server.py ADDRESS [--silent]    # prints "ready", then a line per Notify
"""
import json
import sys

from jeepney import HeaderFields, MessageType, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

conn = open_dbus_connection(bus=sys.argv[1])
conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.Notifications"))
print("ready", flush=True)
while True:
    msg = conn.receive()
    fields = msg.header.fields
    if msg.header.message_type == MessageType.method_call and fields.get(HeaderFields.member) == "Notify":
        if "--silent" in sys.argv[2:]:
            print("Notify", flush=True)
            continue
        print(json.dumps({"app": msg.body[0], "summary": msg.body[3], "body": msg.body[4]}), flush=True)
        conn.send(new_method_return(msg, "u", (1,)))
