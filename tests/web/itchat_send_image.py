"""itchat-uos (from PyPI) sends an image through `syncscope serve`.

Driven by tests/it/web_media.rs; logs in as itchat_common.login does, then

    python itchat_send_image.py BASE_URL TO FILE

sends FILE with itchat's send_image (webwxuploadmedia in chunks with
itchat's uploadmediarequest, then webwxsendmsgimg) to TO (a web user name
such as @bob, or filehelper), prints {"event": "sent", "ret": ...,
"msg_id": ..., "media_id": ...}, logs out and exits 0 when the server took
it. Any failure prints {"event": "error", ...} and exits 1.
"""

import sys

from itchat_common import emit, login, run


def main():
    base, to, path = sys.argv[1:4]
    core = login(base)
    if core is None:
        return 1
    up = core.upload_file(path, isPicture=True)
    media_id = up.get("MediaId", "")
    r = core.send_image(path, toUserName=to, mediaId=media_id)
    ret = r["BaseResponse"]["Ret"]
    emit(
        event="sent",
        ret=ret,
        upload_ret=up["BaseResponse"]["Ret"],
        media_id=media_id,
        msg_id=str(r.get("MsgID", "")),
        error=r["BaseResponse"].get("ErrMsg", ""),
    )
    core.logout()
    return 0 if ret == 0 else 1


if __name__ == "__main__":
    run(main)
