-- wechat_longlink.lua: a minimal tshark/Wireshark dissector for the WeChat
-- long link on TCP port 8080, used by bench/analyze-throughput.sh as the
-- comparison point for `syncscope analyze`.
--
-- A frame is a 16-byte big-endian header (packet length with the header
-- included, header length 16, version 1, cmd, seq) and a body. TCP
-- reassembly and the splitting of segments into frames is left to
-- Wireshark's dissect_tcp_pdus.
--
--     tshark -n -r FILE -X lua_script:bench/wechat_longlink.lua -Y wechat_ll \
--         -T fields -e wechat_ll.cmd -e wechat_ll.seq

local HEADER_LEN = 16

local proto = Proto("wechat_ll", "WeChat long link")

local f_len = ProtoField.uint32("wechat_ll.len", "Length", base.DEC)
local f_header_len = ProtoField.uint16("wechat_ll.header_len", "Header length", base.DEC)
local f_version = ProtoField.uint16("wechat_ll.version", "Version", base.DEC)
local f_cmd = ProtoField.uint32("wechat_ll.cmd", "Cmd", base.DEC)
local f_seq = ProtoField.uint32("wechat_ll.seq", "Seq", base.HEX)
local f_body = ProtoField.bytes("wechat_ll.body", "Body")
proto.fields = { f_len, f_header_len, f_version, f_cmd, f_seq, f_body }

-- Length of the PDU that starts at `offset` (at least HEADER_LEN bytes are
-- there). A length field below the header size cannot be a frame: the rest
-- of the segment is taken as one (malformed) PDU so that dissection moves on.
local function get_len(tvb, pinfo, offset)
    local len = tvb(offset, 4):uint()
    if len < HEADER_LEN then
        return tvb:len() - offset
    end
    return len
end

-- One whole frame (tvb holds exactly the PDU).
local function dissect_pdu(tvb, pinfo, tree)
    local n = tvb:len()
    pinfo.cols.protocol = "WECHAT_LL"
    local t = tree:add(proto, tvb(), "WeChat long link")
    t:add(f_len, tvb(0, 4))
    if n < HEADER_LEN then
        return n
    end
    t:add(f_header_len, tvb(4, 2))
    t:add(f_version, tvb(6, 2))
    t:add(f_cmd, tvb(8, 4))
    t:add(f_seq, tvb(12, 4))
    if n > HEADER_LEN then
        t:add(f_body, tvb(HEADER_LEN))
    end
    local info = string.format("cmd=%u seq=%u", tvb(8, 4):uint(), tvb(12, 4):uint())
    -- Several frames in one segment: one info entry each.
    if tostring(pinfo.cols.info):find("cmd=", 1, true) then
        pinfo.cols.info:append(", " .. info)
    else
        pinfo.cols.info:set(info)
    end
    return n
end

function proto.dissector(tvb, pinfo, tree)
    dissect_tcp_pdus(tvb, tree, HEADER_LEN, get_len, dissect_pdu)
    return tvb:len()
end

DissectorTable.get("tcp.port"):add(8080, proto)
