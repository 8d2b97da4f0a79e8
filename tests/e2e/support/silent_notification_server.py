"""A desktop notification server (org.freedesktop.Notifications) on a
private bus that never answers: a hung desktop shell. Prints a line per
Notify call it leaves unanswered.

    silent_notification_server.py ADDRESS    # prints "ready", then "Notify" per call
"""
import sys

from jeepney import HeaderFields, MessageType
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

conn = open_dbus_connection(bus=sys.argv[1])
conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.Notifications"))
print("ready", flush=True)
while True:
    msg = conn.receive()
    fields = msg.header.fields
    if msg.header.message_type == MessageType.method_call and fields.get(HeaderFields.member) == "Notify":
        print("Notify", flush=True)
