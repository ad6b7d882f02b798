//! `vault:join` and `vault:leave` (CONTRACT §7).
//!
//! A join opens the vault's room first (so every later event is heard), then reads the
//! caller's role and the vault's latest `seq` in one query, replays the missed events from the
//! log (in pages, waiting for room in the socket's buffer, never holding the room), and
//! enters the room only once it has every event the room relayed meanwhile. Events relayed
//! between the role read and the entry are read from the log too, and a removal among them
//! denies the join: the removed user never gets into the room.
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    SocketRef,
    context::{JoinTicket, SocketCtx},
    fanout::{self, Pace, Unsent},
    presence::PresenceUser,
    rooms::{Admission, Entering},
};
use crate::{
    domain::{
        Role,
        events::EventKind,
        input::{self, from_json},
        role_name,
    },
    error::{AppError, Result},
    state::AppState,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinPayload {
    vault_id: String,
    since: Option<i64>,
}

pub(super) fn vault_id_of(value: Value) -> Result<(Uuid, Option<i64>)> {
    let payload = match value {
        Value::String(vault_id) => JoinPayload {
            vault_id,
            since: None,
        },
        object @ Value::Object(_) => from_json::<JoinPayload>(object)?,
        _ => {
            return Err(AppError::field(
                "vaultId",
                "must be a vault id or {vaultId, since}",
            ));
        }
    };
    if payload.since.is_some_and(|s| s < 0) {
        return Err(AppError::field("since", "must be a whole number"));
    }
    let id = input::id("vaultId", &payload.vault_id).map_err(|e| AppError::validation(vec![e]))?;
    Ok((id, payload.since))
}

fn denied() -> AppError {
    AppError::Forbidden("Access denied to vault")
}

/// Events read from the log per query during a replay.
const PAGE: usize = 200;
/// The most bytes of a join's replies waiting unwritten (see [`fanout`]): about one page of
/// presence, so a joining socket's write buffer never holds more.
const WINDOW_BYTES: usize = 4 * 1024;
/// The most packets of a join's replies waiting unwritten on long-polling. python-engineio
/// refuses a poll's answer of more than 16 packets (`Payload.max_decode_packets`) and drops
/// the connection, and up to twice the window may reach one answer (see `Joining::pace`).
const POLLING_WINDOW_MAX: usize = 7;

pub(super) async fn join(
    state: AppState,
    s: SocketRef,
    ctx: SocketCtx,
    value: Value,
) -> Result<Value> {
    let (vault_id, since) = vault_id_of(value)?;
    let ticket = ctx
        .begin_join(vault_id)
        .ok_or(AppError::Unauthorized("Socket is closing"))?;
    if ticket.rejoin {
        state.rooms.remove(vault_id, s.id);
    }
    let entering = state.rooms.enter(vault_id);
    let joining = Joining {
        state: &state,
        socket: &s,
        ctx: &ctx,
        ticket,
        since,
    };
    let result = joining.run(&entering).await;
    if result.is_err() {
        ctx.abandon(ticket);
    }
    result
}

pub(super) async fn leave(
    state: AppState,
    s: SocketRef,
    ctx: SocketCtx,
    value: Value,
) -> Result<Value> {
    let (vault_id, _) = vault_id_of(value)?;
    state.rooms.leave(vault_id, &s, &ctx);
    Ok(json!({ "ok": true }))
}

struct Joining<'a> {
    state: &'a AppState,
    socket: &'a SocketRef,
    ctx: &'a SocketCtx,
    ticket: JoinTicket,
    since: Option<i64>,
}

impl Joining<'_> {
    async fn run(&self, entering: &Entering) -> Result<Value> {
        let (vault_id, user) = (self.ticket.vault_id, self.ctx.user());
        let reads = &self.state.join_reads;
        let (mut role, latest) = reads
            .role_and_latest(vault_id, user.user_id)
            .await?
            .ok_or_else(denied)?;
        tokio::time::timeout(self.pace().patience, entering.ready())
            .await
            .map_err(|_| AppError::Unavailable)?;

        let max_replay = self.state.settings.realtime.max_replay as i64;
        let resync = self
            .since
            .is_some_and(|since| since > latest || latest - since > max_replay);
        let replay = if resync { None } else { self.since };
        if let Some(since) = replay {
            self.read_log(entering, since, latest, latest, role, true)
                .await?;
        }
        let mut caught_up = latest;
        loop {
            let me = PresenceUser {
                user_id: user.user_id,
                user_name: user.name.clone(),
                role: role_name(role),
            };
            match entering.admit(self.socket, self.ctx, self.ticket, caught_up, me) {
                Admission::Admitted { presence } => {
                    return self.joined(role, caught_up, resync, presence).await;
                }
                Admission::Behind(relayed) => {
                    role = self
                        .read_log(entering, caught_up, relayed, latest, role, replay.is_some())
                        .await?;
                    caught_up = relayed;
                }
                Admission::Gone => return Err(denied()),
                Admission::Cancelled => {
                    return Err(AppError::Conflict(
                        "Left the vault before the join completed".into(),
                    ));
                }
            }
        }
    }

    fn pace(&self) -> Pace {
        let cfg = &self.state.settings.realtime;
        Pace {
            patience: cfg.stall_timeout,
            // A poll's answer can miss what was queued while it was written, so up to twice
            // the window may wait in the buffer: a quarter keeps half of it free.
            polling_window: (cfg.max_buffer_size / 4).clamp(1, POLLING_WINDOW_MAX),
            window_bytes: WINDOW_BYTES,
        }
    }

    /// Reads the log after `after` up to `upto`, page by page, sending each event when
    /// replaying. Membership changes after `latest` (the role read) are applied: the role as
    /// of `upto` comes back, or a denial if the caller was removed.
    async fn read_log(
        &self,
        entering: &Entering,
        mut after: i64,
        upto: i64,
        latest: i64,
        role: Role,
        send: bool,
    ) -> Result<Role> {
        let me = self.ctx.user().user_id;
        let mut role = Some(role);
        while after < upto {
            let page = entering.page(after, upto, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for event in page {
                if event.seq > latest && event.member == Some(me) {
                    role = match event.kind {
                        EventKind::MemberRemoved => None,
                        _ => event.member_role().or(role),
                    };
                }
                if send {
                    let bytes = event.payload.get().len();
                    self.send(event.kind.name(), &*event.payload, bytes).await?;
                }
            }
        }
        role.ok_or_else(denied)
    }

    async fn joined(
        &self,
        role: Role,
        latest_seq: i64,
        resync: bool,
        presence: std::sync::Arc<[std::sync::Arc<serde_json::value::RawValue>]>,
    ) -> Result<Value> {
        let vault_id = self.ticket.vault_id;
        let role = role_name(role);
        let joined =
            json!({ "vaultId": vault_id, "role": role, "latestSeq": latest_seq, "resync": resync });
        self.send("vault:joined", &joined, 128).await?;
        for packet in presence.iter() {
            self.send("presence", &**packet, packet.get().len()).await?;
        }
        tracing::debug!(sid = %self.socket.id, %vault_id, since = ?self.since, latest_seq, resync, "joined vault");
        Ok(
            json!({ "ok": true, "vaultId": vault_id, "role": role, "latestSeq": latest_seq, "resync": resync }),
        )
    }

    /// Sends to the joining socket, waiting for room; a socket that reads nothing for the
    /// stall timeout is dropped as a slow consumer.
    async fn send<T: serde::Serialize + Sync + ?Sized>(
        &self,
        event: &str,
        data: &T,
        bytes: usize,
    ) -> Result<()> {
        let link = self.ctx.link();
        let packet = (event, data, bytes);
        match fanout::send_waiting(self.socket, link, packet, self.pace()).await {
            Ok(()) => Ok(()),
            Err(Unsent::Stalled) => {
                self.state.rooms.drop_consumer(self.socket);
                Err(AppError::Unavailable)
            }
            Err(Unsent::Closed) => Err(AppError::Unavailable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_names_a_vault_by_id_with_an_optional_since() {
        let id = Uuid::new_v4();
        assert_eq!(vault_id_of(json!(id.to_string())).unwrap(), (id, None));
        assert_eq!(
            vault_id_of(json!({ "vaultId": id, "since": 4 })).unwrap(),
            (id, Some(4))
        );
        for bad in [
            json!(7),
            json!({ "vaultId": id, "since": -1 }),
            json!("nope"),
        ] {
            assert!(vault_id_of(bad).is_err());
        }
    }
}
