"""A Secret Service that asks the person to confirm every delete, as
KeePassXC does ("Delete entry?", its default), on a private bus: enough of
org.freedesktop.Secret.* for tokend's store to connect, look at the lock
and delete. It holds the items named on the command line (service=tokend,
username=NAME), in an unlocked default collection.

    confirming_secret_service.py ADDRESS NAME...

Prints "ready" once it owns org.freedesktop.secrets, then one line per
event: "delete NAME" (an Item.Delete, answered with a prompt), "prompt"
(a prompt shown), "dismiss". Reads commands on stdin, one per line, each
answered with "ok": "confirm" (the person says yes to the open prompts:
their items go, Completed(dismissed=false)), "cancel" (the person says
no, which some KeePassXC versions report as Completed(dismissed=false)
too: the items stay).
"""
import os
import secrets
import select
import sys

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

ROOT = "/org/freedesktop/secrets"
COLLECTION = ROOT + "/collection/login"
SECRET = "org.freedesktop.Secret."
PROPERTIES = "org.freedesktop.DBus.Properties"
# RFC 2409's second Oakley group, which the Secret Service's
# dh-ietf1024-sha256-aes128-cbc-pkcs7 algorithm uses.
P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    16,
)

conn = open_dbus_connection(bus=sys.argv[1])
items = {f"{COLLECTION}/{i}": name for i, name in enumerate(sys.argv[2:], start=1)}
prompts = {}  # prompt path -> item paths it deletes when confirmed
counter = 0


def say(line):
    print(line, flush=True)


def reply(msg, signature=None, body=()):
    conn.send(new_method_return(msg, signature, body))


def collection_properties():
    return {
        "Items": ("ao", sorted(items)),
        "Label": ("s", "Login"),
        "Locked": ("b", False),
        "Created": ("t", 0),
        "Modified": ("t", 0),
    }


def item_properties(path):
    return {
        "Attributes": ("a{ss}", {"service": "tokend", "username": items[path]}),
        "Label": ("s", f"tokend: {items[path]} refresh token"),
        "Locked": ("b", False),
        "Created": ("t", 0),
        "Modified": ("t", 0),
    }


def completed(prompt):
    emitter = DBusAddress(prompt, interface=SECRET + "Prompt")
    conn.send(new_signal(emitter, "Completed", "bv", (False, ("s", ""))))


def answer(command):
    for prompt, deleting in list(prompts.items()):
        if command == "confirm":
            for item in deleting:
                items.pop(item, None)
        del prompts[prompt]
        completed(prompt)
    say("ok")


def handle(msg):
    global counter
    fields = msg.header.fields
    path = fields.get(HeaderFields.path)
    interface = fields.get(HeaderFields.interface)
    member = fields.get(HeaderFields.member)
    if interface == SECRET + "Service" and member == "OpenSession":
        algorithm = msg.body[0]
        counter += 1
        session = f"{ROOT}/session/{counter}"
        if algorithm == "plain":
            return reply(msg, "vo", (("s", ""), session))
        public = pow(2, secrets.randbelow(P - 3) + 2, P).to_bytes(128, "big")
        return reply(msg, "vo", (("ay", public), session))
    if interface == SECRET + "Service" and member == "ReadAlias":
        return reply(msg, "o", (COLLECTION if msg.body[0] == "default" else "/",))
    if interface == SECRET + "Service" and member == "SearchItems":
        wanted = msg.body[0]
        found = [
            path
            for path, name in sorted(items.items())
            if wanted.get("service", "tokend") == "tokend" and wanted.get("username", name) == name
        ]
        return reply(msg, "aoao", (found, []))
    if interface == PROPERTIES and path == COLLECTION and member == "GetAll":
        return reply(msg, "a{sv}", (collection_properties(),))
    if interface == PROPERTIES and path == COLLECTION and member == "Get":
        return reply(msg, "v", (collection_properties()[msg.body[1]],))
    if interface == PROPERTIES and path in items and member == "GetAll":
        return reply(msg, "a{sv}", (item_properties(path),))
    if interface == PROPERTIES and path in items and member == "Get":
        return reply(msg, "v", (item_properties(path)[msg.body[1]],))
    if interface == SECRET + "Item" and member == "Delete" and path in items:
        say("delete " + items[path])
        counter += 1
        prompt = f"{ROOT}/prompt/{counter}"
        prompts[prompt] = [path]
        return reply(msg, "o", (prompt,))
    if interface == SECRET + "Prompt" and member == "Prompt" and path in prompts:
        say("prompt")
        return reply(msg)
    if interface == SECRET + "Prompt" and member == "Dismiss" and path in prompts:
        say("dismiss")
        del prompts[path]
        return reply(msg)
    conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s", (f"no {interface}.{member} at {path}",)))


conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.secrets"))
say("ready")
while True:
    # jeepney buffers what it reads, so its socket's readiness says too
    # little: it is asked with a short timeout, and stdin looked at between.
    try:
        msg = conn.receive(timeout=0.05)
    except TimeoutError:
        msg = None
    if msg is not None and msg.header.message_type == MessageType.method_call:
        handle(msg)
    if select.select([sys.stdin], [], [], 0)[0]:
        line = sys.stdin.readline()
        if not line:
            os._exit(0)
        answer(line.strip())
