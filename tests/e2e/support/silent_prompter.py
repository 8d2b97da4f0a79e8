"""A desktop's prompter (gcr's org.gnome.keyring.SystemPrompter, which
gnome-keyring asks to show its unlock prompts) on a private bus, that takes
every prompt and never shows or answers one: an unlock prompt nobody
answers, as on a screen nobody looks at.

    silent_prompter.py ADDRESS   # prints "ready", then "prompt" per prompt begun
"""
import sys

from jeepney import HeaderFields, MessageType, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

conn = open_dbus_connection(bus=sys.argv[1])
conn.send_and_get_reply(message_bus.RequestName("org.gnome.keyring.SystemPrompter"))
print("ready", flush=True)
while True:
    msg = conn.receive()
    if msg.header.message_type != MessageType.method_call:
        continue
    if msg.header.fields.get(HeaderFields.member) == "BeginPrompting":
        print("prompt", flush=True)
    # Every call is taken (BeginPrompting, StopPrompting); the prompt's
    # callback is never called, so the prompt stays open.
    conn.send(new_method_return(msg, "", ()))
