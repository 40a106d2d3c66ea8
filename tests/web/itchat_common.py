"""What the itchat scripts share (tests/it/web_server.rs, web_media.rs):
itchat-uos as published, pointed at the server by its base URL
(itchat.config.BASE_URL), logged in with the test confirming the QR code.

login(base) prints {"event": "qr", "uuid": ...} when itchat has its QR code
(the test confirms that login from a device of the user, as a phone
scanning the code would), logs in and prints {"event": "login", ...};
run(main) prints {"event": "error", ...} and exits 1 on any failure.
"""

import json
import sys


def emit(**kv):
    print(json.dumps(kv), flush=True)


def login(base):
    """The logged-in itchat core, or None (reported) when it did not log in."""
    import itchat
    import itchat.config

    itchat.config.BASE_URL = base
    core = itchat.originInstance
    statuses = []

    def qr(uuid, status, qrcode):
        if not statuses:
            emit(event="qr", uuid=uuid)
        statuses.append(status)

    core.login(
        qrCallback=qr,
        loginCallback=lambda: None,
        exitCallback=lambda: None,
    )
    if not core.alive:
        emit(event="error", error="itchat did not log in", statuses=statuses)
        return None
    emit(
        event="login",
        user=core.storageClass.userName,
        nick=core.storageClass.nickName,
        uin=str(core.loginInfo["wxuin"]),
        sid_len=len(core.loginInfo["wxsid"]),
        synckey=core.loginInfo["synckey"],
        friends=[f["UserName"] for f in core.memberList],
        qr_statuses=statuses,
    )
    return core


def run(main):
    try:
        sys.exit(main())
    except Exception as e:  # report, do not hang the test
        import traceback

        emit(event="error", error=repr(e), trace=traceback.format_exc())
        sys.exit(1)
