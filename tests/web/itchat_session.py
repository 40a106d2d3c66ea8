"""A real web WeChat client (itchat-uos, from PyPI) against `syncscope serve`.

Driven by tests/it/web_server.rs. itchat is used as published; the only
change is its base URL (itchat.config.BASE_URL), pointed at the server.

    python itchat_session.py BASE_URL PEER EXPECTED REPLY TIMEOUT_SECS

Prints {"event": "qr", "uuid": ...} when itchat has its QR code (the test
confirms that login from a device of the user, as a phone scanning the
code would), logs in, prints {"event": "login", ...}, waits for a text message from @PEER whose text is
EXPECTED, answers it with REPLY through itchat's send, prints
{"event": "received", ...} and {"event": "sent", ...}, logs out and exits
0. Any failure prints {"event": "error", ...} and exits 1.
"""

import queue
import sys
import time

from itchat_common import emit, login, run


def main():
    base, peer, expected, reply, limit = sys.argv[1:6]
    limit = float(limit)
    core = login(base)
    if core is None:
        return 1
    want_from = "@" + peer
    deadline = time.time() + limit
    while True:
        left = deadline - time.time()
        if left <= 0:
            emit(event="error", error="no message from %s within %s s" % (want_from, limit))
            return 1
        try:
            msg = core.msgList.get(timeout=left)
        except queue.Empty:
            continue
        if msg.get("FromUserName") == want_from and msg.get("Type") == "Text":
            break
    emit(
        event="received",
        from_user=msg["FromUserName"],
        to_user=msg["ToUserName"],
        text=msg["Text"],
        msg_id=str(msg["MsgId"]),
        synckey=core.loginInfo["synckey"],
    )
    if msg["Text"] != expected:
        emit(event="error", error="unexpected text %r" % msg["Text"])
        return 1
    r = core.send(reply, toUserName=msg["FromUserName"])
    emit(event="sent", ret=r["BaseResponse"]["Ret"], msg_id=str(r.get("MsgID", "")))
    core.logout()
    return 0 if r["BaseResponse"]["Ret"] == 0 else 1


if __name__ == "__main__":
    run(main)
