//! [`NewSyncScan`]: what the analyzer reads from a plain-protobuf NewSync
//! request or response (the KeyBuf's SyncKey, the AddMsg MsgIds), found
//! while the body arrives instead of in the whole body.
//!
//! A NewSync response can be megabytes (its CmdList carries the messages)
//! and a capture holds one in flight on every connection at once; the
//! analyzer does not keep such bodies. The scan holds only the KeyBuf and
//! one CmdItem at a time, and gives exactly what [`lenient`]'s functions
//! give on the whole body: the same first-field rules, and nothing from a
//! level that turns out malformed (a property test checks this on cut and
//! mutated bodies).

use super::lenient::{self, cmd_item_msg_id};
use super::{CmdList, NewSyncRequest, NewSyncResponse};
use crate::body::protobuf::{Part, WireStream};
use crate::body::synckey::{KeyMap, SyncKey};

/// A length-delimited field read whole (the KeyBuf): not met yet, being
/// read, or read.
#[derive(Debug, Default)]
enum Held {
    #[default]
    Unseen,
    Reading(Vec<u8>),
    Done(Vec<u8>),
}

/// The CmdList being read: its own top level, the CmdItem in progress and
/// the MsgIds of the items so far.
#[derive(Debug, Default)]
struct List {
    seen: bool,
    done: bool,
    stream: WireStream,
    /// The item being read, while it comes in parts.
    item: Option<Vec<u8>>,
    /// Its length.
    want: u64,
    ids: Vec<String>,
}

/// Which top-level field the bytes belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Into {
    KeyBuf,
    CmdList,
    Other,
}

/// The scan of one NewSync body (see the module doc).
#[derive(Debug)]
pub struct NewSyncScan {
    top: WireStream,
    keybuf_field: u32,
    response: bool,
    into: Into,
    keybuf: Held,
    list: List,
}

impl NewSyncScan {
    /// The scan of a request (`response` false) or a response body.
    pub fn new(response: bool) -> Self {
        NewSyncScan {
            top: WireStream::new(),
            keybuf_field: if response {
                NewSyncResponse::FIELD_KEY_BUF
            } else {
                NewSyncRequest::FIELD_KEY_BUF
            },
            response,
            into: Into::Other,
            keybuf: Held::Unseen,
            list: List::default(),
        }
    }

    /// The next bytes of the body.
    pub fn feed(&mut self, b: &[u8]) {
        let NewSyncScan {
            top,
            keybuf_field,
            response,
            into,
            keybuf,
            list,
        } = self;
        top.feed(b, &mut |p| match p {
            Part::LenStart { number, len } => {
                *into = if number == *keybuf_field && matches!(keybuf, Held::Unseen) {
                    *keybuf = Held::Reading(Vec::with_capacity(len.min(4096) as usize));
                    Into::KeyBuf
                } else if *response && number == NewSyncResponse::FIELD_CMD_LIST && !list.seen {
                    list.seen = true;
                    Into::CmdList
                } else {
                    Into::Other
                };
            }
            Part::LenData(d) => match into {
                Into::KeyBuf => {
                    if let Held::Reading(k) = keybuf {
                        k.extend_from_slice(d);
                    }
                }
                Into::CmdList => list.feed(d),
                Into::Other => {}
            },
            Part::LenEnd => {
                match into {
                    Into::KeyBuf => {
                        if let Held::Reading(k) = std::mem::take(keybuf) {
                            *keybuf = Held::Done(k);
                        }
                    }
                    Into::CmdList => list.done = list.stream.finish(),
                    Into::Other => {}
                }
                *into = Into::Other;
            }
            Part::Varint { .. } => {}
        });
    }

    /// The body ended: its SyncKey and (a response's) MsgIds, as
    /// [`lenient::keybuf_synckey`] and [`lenient::newsync_response_msg_ids`]
    /// read them in the whole body.
    pub fn finish(self) -> (Option<KeyMap>, Vec<String>) {
        if !self.top.finish() {
            return (None, Vec::new());
        }
        let key = match &self.keybuf {
            Held::Done(k) => SyncKey::decode(k).ok().map(|k| k.to_map()),
            _ => None,
        };
        let ids = if self.list.done {
            self.list.ids
        } else {
            Vec::new()
        };
        (key, ids)
    }
}

impl List {
    fn feed(&mut self, b: &[u8]) {
        let List {
            stream,
            item,
            want,
            ids,
            ..
        } = self;
        stream.feed(b, &mut |p| match p {
            Part::LenStart { number, len } if number == CmdList::FIELD_LIST => {
                *item = Some(Vec::new());
                *want = len;
            }
            Part::LenData(d) => match item {
                // The whole item in one piece (the usual case: it came in
                // one segment): read where it lies.
                Some(it) if it.is_empty() && d.len() as u64 == *want => {
                    ids.extend(cmd_item_msg_id(d));
                    *item = None;
                }
                Some(it) => {
                    if it.is_empty() {
                        it.reserve((*want).min(64 << 10) as usize);
                    }
                    it.extend_from_slice(d);
                }
                None => {}
            },
            Part::LenEnd => {
                if let Some(it) = item.take() {
                    ids.extend(cmd_item_msg_id(&it));
                }
            }
            _ => {}
        });
    }
}

/// The whole-body reading the scan matches (for tests and callers that
/// have the body).
pub fn whole(body: &[u8], response: bool) -> (Option<KeyMap>, Vec<String>) {
    let field = if response {
        NewSyncResponse::FIELD_KEY_BUF
    } else {
        NewSyncRequest::FIELD_KEY_BUF
    };
    let ids = if response {
        lenient::newsync_response_msg_ids(body)
    } else {
        Vec::new()
    };
    (lenient::keybuf_synckey(body, field), ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::messages::tests::lenient_reading::add_msg;
    use crate::body::protobuf::{encode_bytes_field, encode_varint_field};
    use proptest::prelude::*;

    fn scanned(body: &[u8], response: bool, cuts: &[usize]) -> (Option<KeyMap>, Vec<String>) {
        let mut s = NewSyncScan::new(response);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(body.len());
        let mut at = 0;
        for c in cuts {
            s.feed(&body[at..c]);
            at = c;
        }
        s.finish()
    }

    /// A NewSync body: ret, a CmdList of AddMsg items (wrapped or not, and
    /// other cmds), a KeyBuf, sometimes fields repeated or in another
    /// order; then a few bytes flipped or the body cut.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let item = (
            any::<bool>(),
            1u64..1 << 40,
            prop_oneof![Just(5u64), 1u64..9],
        )
            .prop_map(|(wrap, id, cmd)| {
                let a = add_msg(id);
                let buf = if wrap {
                    let mut w = Vec::new();
                    encode_varint_field(1, a.len() as u64, &mut w);
                    encode_bytes_field(2, &a, &mut w);
                    w
                } else {
                    a
                };
                let mut it = Vec::new();
                encode_varint_field(1, cmd, &mut it);
                encode_bytes_field(2, &buf, &mut it);
                it
            });
        let keybuf = prop::collection::vec((1u32..20, any::<u32>()), 0..5).prop_map(|keys| {
            SyncKey {
                keys: keys.into_iter().map(|(k, v)| (k, v as u64)).collect(),
            }
            .encode_keybuf()
        });
        (
            prop::collection::vec(item, 0..6),
            keybuf,
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec((any::<usize>(), any::<u8>()), 0..3),
            any::<Option<usize>>(),
        )
            .prop_map(|(items, key, key_first, twice, flips, cut)| {
                let mut list = Vec::new();
                encode_varint_field(1, items.len() as u64, &mut list);
                for it in &items {
                    encode_bytes_field(2, it, &mut list);
                }
                let mut b = Vec::new();
                encode_varint_field(1, 0, &mut b);
                if key_first {
                    encode_bytes_field(3, &key, &mut b);
                    encode_bytes_field(4, &key, &mut b);
                }
                encode_bytes_field(2, &list, &mut b);
                if twice {
                    encode_bytes_field(2, &list[..list.len() / 2], &mut b);
                }
                encode_bytes_field(3, &key, &mut b);
                encode_bytes_field(4, &key, &mut b);
                for (i, x) in flips {
                    if !b.is_empty() {
                        let i = i % b.len();
                        b[i] = x;
                    }
                }
                if let Some(c) = cut {
                    if c % 4 == 0 {
                        b.truncate(c % (b.len() + 1));
                    }
                }
                b
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// The scan finds what the whole-body reading finds, however the
        /// body is cut, for requests and responses.
        #[test]
        fn scan_matches_the_whole_body(
            b in body(),
            response in any::<bool>(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            prop_assert_eq!(scanned(&b, response, &cuts), whole(&b, response));
        }
    }

    #[test]
    fn a_response_gives_its_key_and_ids_byte_by_byte() {
        let mut list = Vec::new();
        // (Not 7: an AddMsg {1: 7, 2: <7 bytes>} reads as a buffer wrapper.)
        for id in [41u64, 42] {
            let mut it = Vec::new();
            encode_varint_field(1, 5, &mut it);
            encode_bytes_field(2, &add_msg(id), &mut it);
            encode_bytes_field(2, &it, &mut list);
        }
        let key = SyncKey {
            keys: vec![(1, 100)],
        };
        let mut b = Vec::new();
        encode_bytes_field(2, &list, &mut b);
        encode_bytes_field(4, &key.encode_keybuf(), &mut b);
        let cuts: Vec<usize> = (0..b.len()).collect();
        assert_eq!(scanned(&b, true, &[]), whole(&b, true));
        let (k, ids) = scanned(&b, true, &cuts);
        assert_eq!(k, Some(key.to_map()));
        assert_eq!(ids, ["41", "42"]);
        // Cut short: nothing.
        assert_eq!(scanned(&b[..b.len() - 1], true, &[3]), (None, vec![]));
    }
}
