//! Media in the store: uploads in parts (an image by its ClientImgId, a
//! voice recording by its ClientMsgId), merged when whole into one stored
//! object and one message, and read back by MsgId.
//!
//! Parts are kept by their start position and never overlap: a part that
//! repeats a stored one byte for byte is a duplicate (nothing changes),
//! one that overlaps another is refused. An upload is whole when its parts
//! add up to its total length (known from the first image part, from the
//! last voice chunk); the parts cover it then, being disjoint and inside
//! it. A finished upload keeps its row with the MsgId, so a part sent
//! again after the end gets the original message.

use rusqlite::{params, OptionalExtension};

use super::{Context, NewMessage, Sent, Store, StoreError, UserId};

/// One part of an upload.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub user: UserId,
    /// The message type it becomes (3 image, 34 voice).
    pub kind: u32,
    pub client_id: &'a str,
    pub to: UserId,
    /// The whole object's length when this part tells it (every image
    /// part; the last voice chunk).
    pub total: Option<u64>,
    pub start: u64,
    pub data: &'a [u8],
    /// Unix seconds.
    pub now: u64,
}

/// What a part led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOutcome {
    /// Stored (or already there): `have` bytes so far, of `total` (0 while
    /// unknown).
    Partial { have: u64, total: u64 },
    /// The upload is whole: its bytes in order (not stored as a message
    /// yet: see [`Store::finish_upload`]).
    Whole(Vec<u8>),
    /// The upload was finished before: its message.
    Done { msg_id: u64, create_time: u64 },
    /// Refused, nothing stored: why.
    Refused(String),
}

/// A stored object and who may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub msg_id: u64,
    pub msg_type: u32,
    pub from: UserId,
    pub to: UserId,
    pub data: Vec<u8>,
    pub thumb: Option<Vec<u8>>,
}

impl Store {
    /// Stores one part of an upload; `max_open` caps the uploads a user may
    /// have unfinished at once (a new one past it is refused).
    pub fn put_part(&mut self, p: &Part<'_>, max_open: usize) -> Result<PartOutcome, StoreError> {
        let key = params![p.user, p.kind, p.client_id];
        let row: Option<(i64, i64, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT to_user, total_len, msg_id FROM uploads
                 WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
            )
            .and_then(|mut st| {
                st.query_row(key, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .ctx("reading an upload")?;
        let end = p.start + p.data.len() as u64;
        let total = match row {
            Some((_, _, Some(msg_id))) => {
                let create_time: i64 = self
                    .conn
                    .prepare_cached("SELECT create_time FROM messages WHERE msg_id = ?1")
                    .and_then(|mut st| st.query_row([msg_id], |r| r.get(0)))
                    .ctx("reading an uploaded message")?;
                return Ok(PartOutcome::Done {
                    msg_id: msg_id as u64,
                    create_time: create_time as u64,
                });
            }
            Some((to, _, None)) if to != p.to => {
                return Ok(PartOutcome::Refused(format!(
                    "upload {:?} was started for another recipient",
                    p.client_id
                )))
            }
            Some((_, known, None)) => {
                let known = known as u64;
                match p.total {
                    Some(t) if known != 0 && t != known => {
                        return Ok(PartOutcome::Refused(format!(
                            "upload {:?} has a total length of {known}, this part says {t}",
                            p.client_id
                        )))
                    }
                    Some(t) => t,
                    None => known,
                }
            }
            None => {
                let open: i64 = self
                    .conn
                    .prepare_cached(
                        "SELECT COUNT(*) FROM uploads WHERE user_id = ?1 AND msg_id IS NULL",
                    )
                    .and_then(|mut st| st.query_row([p.user], |r| r.get(0)))
                    .ctx("counting unfinished uploads")?;
                if open as usize >= max_open {
                    return Ok(PartOutcome::Refused(format!(
                        "{open} uploads unfinished, at the cap of {max_open}: finish one or let \
                         it expire"
                    )));
                }
                p.total.unwrap_or(0)
            }
        };
        if total != 0 && end > total {
            return Ok(PartOutcome::Refused(format!(
                "part {}..{end} goes past the total length {total}",
                p.start
            )));
        }
        // The part that starts last before this one ends is the only one
        // that can overlap it (parts are disjoint).
        let before: Option<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT start_pos, data FROM upload_parts
                 WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3 AND start_pos < ?4
                 ORDER BY start_pos DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![p.user, p.kind, p.client_id, end as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .ctx("reading an upload's parts")?;
        let duplicate = match &before {
            Some((s, d)) if *s as u64 == p.start && d.as_slice() == p.data => true,
            Some((s, d)) if *s as u64 + d.len() as u64 > p.start => {
                return Ok(PartOutcome::Refused(format!(
                    "part {}..{end} overlaps the stored part {s}..{}",
                    p.start,
                    *s as u64 + d.len() as u64
                )))
            }
            _ => false,
        };
        if row.is_none() {
            self.conn
                .prepare_cached(
                    "INSERT INTO uploads (user_id, kind, client_id, to_user, total_len, started)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        p.user,
                        p.kind,
                        p.client_id,
                        p.to,
                        total as i64,
                        p.now as i64
                    ])
                })
                .ctx("starting an upload")?;
        } else if p.total.is_some() {
            self.conn
                .prepare_cached(
                    "UPDATE uploads SET total_len = ?4
                     WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
                )
                .and_then(|mut st| st.execute(params![p.user, p.kind, p.client_id, total as i64]))
                .ctx("noting an upload's length")?;
        }
        if !duplicate {
            self.conn
                .prepare_cached(
                    "INSERT INTO upload_parts (user_id, kind, client_id, start_pos, data)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut st| {
                    st.execute(params![p.user, p.kind, p.client_id, p.start as i64, p.data])
                })
                .ctx("storing a part")?;
        }
        let have: i64 = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM upload_parts
                 WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
            )
            .and_then(|mut st| st.query_row(key, |r| r.get(0)))
            .ctx("measuring an upload")?;
        let have = have as u64;
        if total == 0 || have < total {
            return Ok(PartOutcome::Partial { have, total });
        }
        Ok(PartOutcome::Whole(self.upload_bytes(
            p.user,
            p.kind,
            p.client_id,
            total,
        )?))
    }

    /// Where upload `client_id` of `user` is (`None`: no such upload, or
    /// it expired): partial, whole (its bytes; the web sends its message
    /// later, [`Store::finish_upload`]) or done.
    pub fn upload_state(
        &self,
        user: UserId,
        kind: u32,
        client_id: &str,
    ) -> Result<Option<PartOutcome>, StoreError> {
        let key = params![user, kind, client_id];
        let row: Option<(i64, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT total_len, msg_id FROM uploads
                 WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
            )
            .and_then(|mut st| st.query_row(key, |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .ctx("reading an upload")?;
        let Some((total, msg_id)) = row else {
            return Ok(None);
        };
        if let Some(msg_id) = msg_id {
            let create_time: i64 = self
                .conn
                .prepare_cached("SELECT create_time FROM messages WHERE msg_id = ?1")
                .and_then(|mut st| st.query_row([msg_id], |r| r.get(0)))
                .ctx("reading an uploaded message")?;
            return Ok(Some(PartOutcome::Done {
                msg_id: msg_id as u64,
                create_time: create_time as u64,
            }));
        }
        let have: i64 = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM upload_parts
                 WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
            )
            .and_then(|mut st| st.query_row(key, |r| r.get(0)))
            .ctx("measuring an upload")?;
        let (have, total) = (have as u64, total as u64);
        if total == 0 || have < total {
            return Ok(Some(PartOutcome::Partial { have, total }));
        }
        Ok(Some(PartOutcome::Whole(
            self.upload_bytes(user, kind, client_id, total)?,
        )))
    }

    /// The parts of an upload, in order.
    fn upload_bytes(
        &self,
        user: UserId,
        kind: u32,
        client_id: &str,
        total: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let key = params![user, kind, client_id];
        let mut whole = Vec::with_capacity(total as usize);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT data FROM upload_parts WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3
                 ORDER BY start_pos",
            )
            .ctx("reading an upload's parts")?;
        let mut rows = st.query(key).ctx("reading an upload's parts")?;
        while let Some(r) = rows.next().ctx("reading an upload's parts")? {
            let d: Vec<u8> = r.get(0).ctx("reading a part")?;
            whole.extend_from_slice(&d);
        }
        Ok(whole)
    }

    /// Stores a whole upload as message `m` with its object (and
    /// thumbnail), and drops its parts. An upload finished before gives its
    /// message with `duplicate` set; `None`: the upload is not there (it
    /// expired meanwhile).
    pub fn finish_upload(
        &mut self,
        user: UserId,
        kind: u32,
        client_id: &str,
        m: &NewMessage,
        data: &[u8],
        thumb: Option<&[u8]>,
    ) -> Result<Option<Sent>, StoreError> {
        let key = params![user, kind, client_id];
        let row: Option<Option<i64>> = self
            .conn
            .prepare_cached(
                "SELECT msg_id FROM uploads WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
            )
            .and_then(|mut st| st.query_row(key, |r| r.get(0)).optional())
            .ctx("reading an upload")?;
        let Some(done) = row else {
            return Ok(None);
        };
        if let Some(msg_id) = done {
            let create_time: i64 = self
                .conn
                .prepare_cached("SELECT create_time FROM messages WHERE msg_id = ?1")
                .and_then(|mut st| st.query_row([msg_id], |r| r.get(0)))
                .ctx("reading an uploaded message")?;
            return Ok(Some(Sent {
                msg_id: msg_id as u64,
                create_time: create_time as u64,
                duplicate: true,
            }));
        }
        let sent = self.send(m)?;
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO media (msg_id, data, thumb) VALUES (?1, ?2, ?3)")
            .and_then(|mut st| st.execute(params![sent.msg_id as i64, data, thumb]))
            .ctx("storing a media object")?;
        self.conn
            .prepare_cached(
                "UPDATE uploads SET msg_id = ?4 WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
            )
            .and_then(|mut st| st.execute(params![user, kind, client_id, sent.msg_id as i64]))
            .ctx("finishing an upload")?;
        self.conn
            .prepare_cached(
                "DELETE FROM upload_parts WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
            )
            .and_then(|mut st| st.execute(key))
            .ctx("dropping an upload's parts")?;
        Ok(Some(sent))
    }

    /// Drops an unfinished upload and its parts (e.g. its bytes are not an
    /// image); `true` if there was one.
    pub fn drop_upload(
        &mut self,
        user: UserId,
        kind: u32,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let key = params![user, kind, client_id];
        self.conn
            .prepare_cached(
                "DELETE FROM upload_parts WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3",
            )
            .and_then(|mut st| st.execute(key))
            .ctx("dropping an upload's parts")?;
        let n = self
            .conn
            .prepare_cached(
                "DELETE FROM uploads WHERE user_id = ?1 AND kind = ?2 AND client_id = ?3
                 AND msg_id IS NULL",
            )
            .and_then(|mut st| st.execute(key))
            .ctx("dropping an upload")?;
        Ok(n > 0)
    }

    /// Drops the unfinished uploads started before `before` (Unix
    /// seconds) with their parts: how many.
    pub fn expire_uploads(&mut self, before: u64) -> Result<usize, StoreError> {
        self.conn
            .prepare_cached(
                "DELETE FROM upload_parts WHERE (user_id, kind, client_id) IN
                 (SELECT user_id, kind, client_id FROM uploads
                  WHERE msg_id IS NULL AND started < ?1)",
            )
            .and_then(|mut st| st.execute([before as i64]))
            .ctx("dropping expired parts")?;
        self.conn
            .prepare_cached("DELETE FROM uploads WHERE msg_id IS NULL AND started < ?1")
            .and_then(|mut st| st.execute([before as i64]))
            .ctx("dropping expired uploads")
    }

    /// Unfinished uploads, all users.
    pub fn open_uploads(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM uploads WHERE msg_id IS NULL",
                [],
                |r| r.get(0),
            )
            .ctx("counting unfinished uploads")?;
        Ok(n as usize)
    }

    /// The object stored with message `msg_id`.
    pub fn media(&self, msg_id: u64) -> Result<Option<Media>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT m.msg_type, m.from_user, m.to_user, md.data, md.thumb
                 FROM media md JOIN messages m ON m.msg_id = md.msg_id WHERE md.msg_id = ?1",
            )
            .and_then(|mut st| {
                st.query_row([msg_id as i64], |r| {
                    Ok(Media {
                        msg_id,
                        msg_type: r.get::<_, i64>(0)? as u32,
                        from: r.get(1)?,
                        to: r.get(2)?,
                        data: r.get(3)?,
                        thumb: r.get(4)?,
                    })
                })
                .optional()
            })
            .ctx("reading a media object")
    }
}
