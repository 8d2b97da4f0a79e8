"""A peer of tokend's bus, for the need-to-know tests: what a local user's
own D-Bus client can learn. Run as that user with /usr/bin/python3.

    bus_peer.py ADDRESS ask                 # answers to the read-only calls
    bus_peer.py ADDRESS call METHOD NAME    # one org.tokend.Broker1 call
    bus_peer.py ADDRESS call-again METHOD NAME
                                            # that call, then once more on
                                            # the same connection after a
                                            # line on stdin
    bus_peer.py ADDRESS listen PROVIDER     # every signal it receives, until
                                            # LoginFinished for PROVIDER
    bus_peer.py ADDRESS listen-until-told   # every signal it receives, until
                                            # a line on stdin, then the answer
                                            # to one more call (every signal
                                            # tokend sent it before is in)
    bus_peer.py ADDRESS forge-departure PEER
                                            # a NameOwnerChanged saying PEER
                                            # left, sent to tokend's unique
                                            # name as the bus would, then a
                                            # call (once answered, tokend has
                                            # read the signal)
    bus_peer.py ADDRESS flood CONNS CALLS METHOD NAME
                                            # CALLS calls on each of CONNS
                                            # connections, sent at once

Each answer or signal is one JSON line on stdout; `listen` prints "ready"
once it is subscribed (to every signal of the bus, and it tries to
eavesdrop) and known to tokend (it has called ListProviders);
`listen-until-told` then prints its unique name ({"unique_name": ...}).
"""
import json
import sys
import time

from jeepney import DBusAddress, HeaderFields, MatchRule, MessageType, new_method_call, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

BROKER = "/org/tokend/Broker1"
NAME = "org.tokend.Broker1"
LISTEN_LIMIT_S = 60


def call(conn, path, interface, method, signature=None, body=()):
    address = DBusAddress(path, bus_name=NAME, interface=interface)
    reply = conn.send_and_get_reply(new_method_call(address, method, signature, body))
    fields = reply.header.fields
    if reply.header.message_type == MessageType.error:
        return {"error": fields.get(HeaderFields.error_name), "message": reply.body[0] if reply.body else ""}
    return {"ok": repr(reply.body)}


def ask(conn):
    providers = BROKER + "/providers"
    answers = {
        "ListProviders": call(conn, BROKER, NAME, "ListProviders"),
        "GetManagedObjects": call(conn, BROKER, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"),
        "IntrospectProviders": call(conn, providers, "org.freedesktop.DBus.Introspectable", "Introspect"),
        "IntrospectBroker": call(conn, BROKER, "org.freedesktop.DBus.Introspectable", "Introspect"),
        "GetAllBroker": call(conn, BROKER, "org.freedesktop.DBus.Properties", "GetAll", "s", (NAME,)),
    }
    for name in ["secret", "shared", "nonexistent"]:
        path = providers + "/" + name
        answers["GetAll " + name] = call(
            conn, path, "org.freedesktop.DBus.Properties", "GetAll", "s", ("org.tokend.Provider1",))
        answers["Introspect " + name] = call(conn, path, "org.freedesktop.DBus.Introspectable", "Introspect")
    for name, answer in answers.items():
        print(json.dumps({"call": name, **answer}), flush=True)


def subscribe(conn):
    conn.send_and_get_reply(message_bus.AddMatch(MatchRule(type="signal")))
    try:
        conn.send_and_get_reply(message_bus.AddMatch(MatchRule(eavesdrop=True)))
    except Exception:  # refused by the bus, as it should be
        pass
    call(conn, BROKER, NAME, "ListProviders")
    print("ready", flush=True)


def print_signal(msg):
    fields = msg.header.fields
    print(json.dumps({"signal": fields.get(HeaderFields.member), "path": fields.get(HeaderFields.path),
                      "sender": fields.get(HeaderFields.sender), "body": repr(msg.body)}), flush=True)


def listen_until_told(conn):
    import select
    subscribe(conn)
    print(json.dumps({"unique_name": conn.unique_name}), flush=True)
    deadline = time.monotonic() + LISTEN_LIMIT_S
    barrier = None
    while time.monotonic() < deadline:
        if barrier is None and select.select([sys.stdin], [], [], 0)[0]:
            sys.stdin.readline()
            # tokend answers this after every signal it sent before: once
            # the answer is in, so is each of them.
            barrier = next(conn.outgoing_serial)
            conn.send(new_method_call(DBusAddress(BROKER, bus_name=NAME, interface=NAME),
                                      "ListProviders"), serial=barrier)
        try:
            msg = conn.receive(timeout=0.05)
        except TimeoutError:
            continue
        kind = msg.header.message_type
        if kind == MessageType.signal:
            print_signal(msg)
        elif barrier is not None and msg.header.fields.get(HeaderFields.reply_serial) == barrier:
            return 0
    print("not told to stop", file=sys.stderr)
    return 3


def listen(conn, until):
    subscribe(conn)
    deadline = time.monotonic() + LISTEN_LIMIT_S
    while time.monotonic() < deadline:
        try:
            msg = conn.receive(timeout=deadline - time.monotonic())
        except TimeoutError:
            break
        if msg.header.message_type != MessageType.signal:
            continue
        print_signal(msg)
        member = msg.header.fields.get(HeaderFields.member)
        if member == "LoginFinished" and msg.body and msg.body[0] == until:
            return 0
    print("no LoginFinished for " + until, file=sys.stderr)
    return 3


def forge_departure(conn, peer):
    """Says, as if it were the bus, that `peer` left; to tokend alone."""
    owner = conn.send_and_get_reply(message_bus.GetNameOwner(NAME)).body[0]
    bus = DBusAddress("/org/freedesktop/DBus", interface="org.freedesktop.DBus")
    forged = new_signal(bus, "NameOwnerChanged", "sss", (peer, peer, ""))
    forged.header.fields[HeaderFields.destination] = owner
    conn.send(forged)
    print(json.dumps({"forged": peer, "to": owner, **call(conn, BROKER, NAME, "ListProviders")}), flush=True)
    return 0


def flood(address, conns, calls, method, provider):
    """Sends every call without waiting, prints "sent", then one JSON line
    per reply ({"error", "message"} or {"ok"}) until all came or 60 s."""
    import threading
    connections = [open_dbus_connection(bus=address) for _ in range(conns)]
    target = DBusAddress(BROKER, bus_name=NAME, interface=NAME)
    for conn in connections:
        for _ in range(calls):
            conn.send(new_method_call(target, method, "s", (provider,)))
    print("sent", flush=True)
    lock = threading.Lock()
    deadline = time.monotonic() + LISTEN_LIMIT_S

    def replies(conn):
        left = calls
        while left and time.monotonic() < deadline:
            try:
                msg = conn.receive(timeout=deadline - time.monotonic())
            except TimeoutError:
                return
            kind = msg.header.message_type
            if kind not in (MessageType.error, MessageType.method_return):
                continue
            left -= 1
            if kind == MessageType.error:
                line = {"error": msg.header.fields.get(HeaderFields.error_name),
                        "message": msg.body[0] if msg.body else ""}
            else:
                line = {"ok": repr(msg.body)}
            with lock:
                print(json.dumps(line), flush=True)

    threads = [threading.Thread(target=replies, args=(c,)) for c in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 0


def main():
    address, mode = sys.argv[1], sys.argv[2]
    if mode == "flood":
        conns, calls, method, provider = sys.argv[3:7]
        return flood(address, int(conns), int(calls), method, provider)
    conn = open_dbus_connection(bus=address)
    if mode == "ask":
        ask(conn)
        return 0
    if mode == "call":
        method, provider = sys.argv[3], sys.argv[4]
        print(json.dumps(call(conn, BROKER, NAME, method, "s", (provider,))), flush=True)
        return 0
    if mode == "call-again":
        method, provider = sys.argv[3], sys.argv[4]
        print(json.dumps(call(conn, BROKER, NAME, method, "s", (provider,))), flush=True)
        sys.stdin.readline()
        print(json.dumps(call(conn, BROKER, NAME, method, "s", (provider,))), flush=True)
        return 0
    if mode == "forge-departure":
        return forge_departure(conn, sys.argv[3])
    if mode == "listen-until-told":
        return listen_until_told(conn)
    return listen(conn, sys.argv[3])


sys.exit(main())
