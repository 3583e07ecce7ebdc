#!/usr/bin/python3
"""Minimal XMPP client for satellite's integration tests, driven over stdio.

Usage: client.py JID PASSWORD HOST PORT

Protocol (one JSON object per line):
  stdout: {"event": "ready", "jid": J}  session started (J: bound full JID),
                                        initial presence sent
          {"stanza": "<iq .../>"}       every received top-level iq/message/presence,
                                        serialised with its xmlns ('jabber:client')
          {"event": "error", "reason": "..."}   fatal error (the script then exits 1)
          {"event": "disconnected"}      stream closed (the script then exits)
  stdin:  {"send": "<xml/>"}             sent raw on the stream (default ns jabber:client)
          {"upload": {"id": I, "path": P, "content_type": T}}
                                         XEP-0363 upload with slixmpp's own plugin
                                         (service found by disco on the server,
                                         PUT with aiohttp); answers
                                         {"event": "uploaded", "id": I, "url": U} or
                                         {"event": "upload-failed", "id": I, "reason": R}
          {"quit": true}                 close the stream and exit (EOF does the same)

The client never answers stanzas by itself (no automatic error replies to
unhandled iqs, no automatic presence subscription handling), so that tests see
and answer everything themselves. Needs Debian's slixmpp (python3-slixmpp, 1.8).
"""

import asyncio
import json
import logging
import os
import sys
import threading

import slixmpp
from slixmpp.xmlstream import tostring
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher.base import MatcherBase

STANZA_TAGS = {
    "{jabber:client}iq",
    "{jabber:client}message",
    "{jabber:client}presence",
}


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class MatchAll(MatcherBase):
    """Matches every top-level stanza (so nothing counts as 'unhandled')."""

    def __init__(self):
        super().__init__(None)

    def match(self, xml):
        return True


class TestClient(slixmpp.ClientXMPP):
    def __init__(self, jid, password):
        super().__init__(jid, password)
        # Never answer subscription requests by ourselves.
        self.auto_authorize = None
        self.auto_subscribe = False
        # Plaintext loopback: allow SASL PLAIN without TLS.
        self["feature_mechanisms"].unencrypted_plain = True
        self.ready = False
        self.quitting = False
        self.exit_code = 0
        # Commands received before session start, replayed once it has started.
        self.pending = []
        # Catch-all handler: prevents slixmpp's default feature-not-implemented
        # replies to iq get/set that nobody handles.
        self.register_handler(Callback("satellite-test-catch-all", MatchAll(), lambda s: None))
        self.register_plugin("xep_0363")
        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("connection_failed", self.on_connection_failed)
        self.add_event_handler("stream_error", self.on_stream_error)
        self.add_event_handler("disconnected", self.on_disconnected)

    def incoming_filter(self, xml):
        # Called with the raw ElementTree element of every top-level element
        # received, before slixmpp builds stanza objects or runs handlers.
        if self.ready and xml.tag in STANZA_TAGS:
            emit({"stanza": tostring(xml, xmlns="", top_level=True)})
        return xml

    async def on_session_start(self, _event):
        self.ready = True
        self.send_presence()
        emit({"event": "ready", "jid": self.boundjid.full})
        pending, self.pending = self.pending, []
        for line in pending:
            self.handle_command(line)

    def fail(self, reason):
        emit({"event": "error", "reason": reason})
        sys.stderr.write("client.py: %s\n" % reason)
        sys.stderr.flush()
        self.exit_code = 1
        self.loop.stop()

    def on_failed_auth(self, _event):
        self.fail("authentication failed")

    def on_connection_failed(self, event):
        self.fail("connection failed: %s" % (event,))

    def on_stream_error(self, event):
        sys.stderr.write("client.py: stream error: %s\n" % (event,))
        sys.stderr.flush()

    def on_disconnected(self, _event):
        emit({"event": "disconnected"})
        if not self.ready and not self.quitting:
            self.fail("disconnected before session start")
        self.loop.stop()

    def handle_command(self, line):
        if line is None:
            self.quit()
            return
        line = line.strip()
        if not line:
            return
        try:
            cmd = json.loads(line)
        except ValueError as e:
            sys.stderr.write("client.py: bad command %r: %s\n" % (line, e))
            return
        if not self.ready and not cmd.get("quit"):
            self.pending.append(line)
            return
        if "send" in cmd:
            self.send_raw(cmd["send"])
        if "upload" in cmd:
            asyncio.ensure_future(self.upload(cmd["upload"]))
        if cmd.get("quit"):
            self.quit()

    async def find_upload_service(self):
        """XEP-0363 §3 discovery: disco#items of our server, disco#info of
        each, the first with identity store/file and the upload feature.
        (slixmpp 1.8's own find_upload_service passes coroutines to
        asyncio.wait, which Python 3.11 refuses; this does the same steps.)"""
        plugin = self["xep_0363"]
        items = await self["xep_0030"].get_items(jid=self.boundjid.domain, timeout=10)
        for item in items["disco_items"]["items"]:
            info = await self["xep_0030"].get_info(jid=item[0], timeout=10)
            identities = info["disco_info"]["identities"]
            if not any(i[0] == "store" and i[1] == "file" for i in identities):
                continue
            if "urn:xmpp:http:upload:0" not in info["disco_info"]["features"]:
                continue
            plugin.upload_service = info["from"]
            for form in info["disco_info"].iterables:
                values = form["values"]
                if values.get("FORM_TYPE") == ["urn:xmpp:http:upload:0"]:
                    plugin.max_file_size = int(values["max-file-size"])
            return
        raise RuntimeError("no upload service in disco#items of " + self.boundjid.domain)

    async def upload(self, spec):
        try:
            await self.find_upload_service()
            url = await self["xep_0363"].upload_file(
                spec["path"], content_type=spec.get("content_type"), timeout=20
            )
            emit({"event": "uploaded", "id": spec.get("id"), "url": url})
        except Exception as e:  # reported to the test, which decides
            emit({"event": "upload-failed", "id": spec.get("id"), "reason": repr(e)})

    def quit(self):
        if self.quitting:
            return
        self.quitting = True
        if self.transport is None:
            self.loop.stop()
        else:
            self.disconnect(wait=2.0)


def stdin_reader(client, loop):
    for line in sys.stdin:
        loop.call_soon_threadsafe(client.handle_command, line)
    loop.call_soon_threadsafe(client.handle_command, None)


def main():
    if len(sys.argv) != 5:
        sys.stderr.write("usage: client.py JID PASSWORD HOST PORT\n")
        sys.exit(2)
    jid, password, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("SATELLITE_TEST_CLIENT_DEBUG") else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    client = TestClient(jid, password)
    threading.Thread(target=stdin_reader, args=(client, loop), daemon=True).start()
    client.connect((host, port), use_ssl=False, force_starttls=False, disable_starttls=True)
    loop.run_forever()
    sys.exit(client.exit_code)


if __name__ == "__main__":
    main()
