//! Sources: the documents of a vault. Listing pages by the `seq` of each source's creation
//! event, newest first, which stays stable while new sources arrive.
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait,
    Statement, prelude::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    Actor,
    access::{self, Action},
    dto,
    events::{self, EventKind},
    input, now,
};
use crate::error::{AppError, Result};
use entities::sources;

/// `{title, fileUrl}`, over REST and the socket alike.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreateSource)]
pub struct SourceFields {
    /// Trimmed of white space before it is checked and stored, so it needs one other character;
    /// never U+0000.
    #[schema(
        min_length = 1,
        max_length = 300,
        pattern = "^[^\\x00]*[^\\x00\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\x00]*$"
    )]
    pub title: String,
    /// An absolute `http` or `https` URI (RFC 3986: other characters percent-encoded).
    #[schema(
        format = "uri",
        max_length = 2048,
        pattern = "^https?://([A-Za-z0-9._~:/?#\\[\\]@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})+$"
    )]
    pub file_url: String,
}

/// `{title?, fileUrl?, version?}`: absent fields are left as they are.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PatchSource)]
pub struct SourcePatchFields {
    /// Trimmed of white space before it is checked and stored, so it needs one other character;
    /// never U+0000.
    #[schema(
        min_length = 1,
        max_length = 300,
        pattern = "^[^\\x00]*[^\\x00\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\x00]*$"
    )]
    pub title: Option<String>,
    #[schema(
        format = "uri",
        max_length = 2048,
        pattern = "^https?://([A-Za-z0-9._~:/?#\\[\\]@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})+$"
    )]
    pub file_url: Option<String>,
    /// The version the client last saw: the update is refused with 409 if it is stale.
    #[schema(minimum = 1)]
    pub version: Option<i32>,
}

pub struct NewSource {
    pub title: input::SourceTitle,
    pub file_url: input::FileUrl,
}

#[derive(Default)]
pub struct SourcePatch {
    pub title: Option<input::SourceTitle>,
    pub file_url: Option<input::FileUrl>,
    pub version: Option<i32>,
}

impl NewSource {
    pub fn parse(fields: &SourceFields) -> Result<Self> {
        let mut c = input::Checker::default();
        let title = c.check(input::SourceTitle::parse(&fields.title));
        let file_url = c.check(input::FileUrl::parse(&fields.file_url));
        c.finish()?;
        Ok(Self {
            title: title.unwrap(),
            file_url: file_url.unwrap(),
        })
    }
}

impl SourcePatch {
    pub fn parse(fields: &SourcePatchFields) -> Result<Self> {
        let mut c = input::Checker::default();
        let mut patch = Self {
            version: fields.version,
            ..Self::default()
        };
        if let Some(title) = &fields.title {
            patch.title = c.check(input::SourceTitle::parse(title));
        }
        if let Some(url) = &fields.file_url {
            patch.file_url = c.check(input::FileUrl::parse(url));
        }
        if fields.version.is_some_and(|v| v < 1) {
            c.check::<()>(Err(crate::error::FieldError::new(
                "version",
                "must be a positive integer",
            )));
        }
        c.finish()?;
        Ok(patch)
    }
}

pub struct Page {
    pub sources: Vec<dto::Source>,
    pub next_cursor: Option<String>,
}

/// A cursor is `s{seq}` in hex.
pub fn encode_cursor(seq: i64) -> String {
    hex::encode(format!("s{seq}"))
}

/// Takes exactly what the document's `cursor` pattern allows (`api::sources`): `s` and 1 to
/// 18 digits (which always fit an `i64`), in hex.
pub fn decode_cursor(raw: &str) -> Result<i64> {
    let bad = || AppError::field("cursor", "is not a cursor this server issued");
    let text = hex::decode(raw).map_err(|_| bad())?;
    let digits = text.strip_prefix(b"s").ok_or_else(bad)?;
    if !(1..=18).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    Ok(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
}

pub async fn list(
    db: &impl ConnectionTrait,
    actor: &Actor,
    vault_id: Uuid,
    limit: u64,
    cursor: Option<i64>,
) -> Result<Page> {
    // The membership is checked inside the page's own query; only an empty page asks again,
    // to tell a vault without sources from one the caller cannot see.
    let backend = db.get_database_backend();
    let page = Statement::from_sql_and_values(
        backend,
        PAGE_SQL,
        [
            vault_id.into(),
            cursor.unwrap_or(i64::MAX).into(),
            actor.user_id.into(),
            i64::try_from(limit)
                .unwrap_or(i64::MAX)
                .saturating_add(1)
                .into(),
        ],
    );
    let rows = db.query_all_raw(page).await?;
    if rows.is_empty() {
        access::require(db, vault_id, actor.user_id, Action::Read).await?;
    }
    let more = rows.len() as u64 > limit;
    let mut sources = Vec::with_capacity(rows.len().min(limit as usize));
    let mut last_seq = 0;
    for row in rows.iter().take(limit as usize) {
        let (source, seq) = page_row(row, vault_id)?;
        sources.push(source);
        last_seq = seq;
    }
    Ok(Page {
        sources,
        next_cursor: more.then(|| encode_cursor(last_seq)),
    })
}

/// A page, newest first, of the sources of vault `$1` created before `seq` `$2`, if user `$3`
/// is a member of it; `$4` rows at most. The hottest read there is, so it is written out once
/// rather than built by the query builder on every request, and its rows are read by position
/// rather than decoded into entity models by column name and then copied into the DTO.
///
/// `$n` numbers the values on both backends: SQLite takes `$1` as the name of its first
/// value, and sqlx binds such names by their number.
const PAGE_SQL: &str = "SELECT id, title, file_url, created_by, created_at, updated_at, version, \
     created_seq FROM sources WHERE vault_id = $1 AND created_seq < $2 AND EXISTS \
     (SELECT 1 FROM memberships m WHERE m.vault_id = $1 AND m.user_id = $3) \
     ORDER BY created_seq DESC LIMIT $4";

/// One row of [`PAGE_SQL`] for vault `vault_id`: the source as clients see it, and its
/// `created_seq`. The vault is the one asked for, so it is not read (each value read is copied
/// out of SQLite and decoded).
fn page_row(row: &sea_orm::QueryResult, vault_id: Uuid) -> Result<(dto::Source, i64)> {
    let source = dto::Source {
        id: row.try_get_by_index(0)?,
        vault_id,
        title: row.try_get_by_index(1)?,
        file_url: row.try_get_by_index(2)?,
        created_by: row.try_get_by_index(3)?,
        created_at: row.try_get_by_index(4)?,
        updated_at: row.try_get_by_index(5)?,
        version: row.try_get_by_index(6)?,
    };
    Ok((source, row.try_get_by_index(7)?))
}

pub async fn get(db: &impl ConnectionTrait, actor: &Actor, source_id: Uuid) -> Result<dto::Source> {
    let source = find(db, source_id).await?;
    access::require(db, source.vault_id, actor.user_id, Action::Read)
        .await
        .map_err(hide_vault)?;
    Ok(dto::Source::from(&source))
}

pub async fn create(
    tx: &mut super::Tx,
    actor: &Actor,
    vault_id: Uuid,
    new: NewSource,
) -> Result<dto::Source> {
    let (seq, role) =
        access::next_seq_requiring(tx, vault_id, actor.user_id, Action::WriteSources).await?;
    let at = now();
    let model = sources::Model {
        id: Uuid::new_v4(),
        vault_id,
        title: new.title.0,
        file_url: new.file_url.0,
        created_by: Some(actor.user_id),
        created_seq: seq,
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let insert = sources::Entity::insert(sources::ActiveModel {
        id: Set(model.id),
        vault_id: Set(model.vault_id),
        title: Set(model.title.clone()),
        file_url: Set(model.file_url.clone()),
        created_by: Set(model.created_by),
        created_seq: Set(seq),
        version: Set(1),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .build(tx.get_database_backend());
    let source = dto::Source::from(&model);
    let change = events::Change::new(EventKind::SourceCreated, json!({ "source": source }));
    events::append_after(tx, Some(insert), vault_id, seq, actor, role, change).await?;
    Ok(source)
}

pub async fn update(
    tx: &mut super::Tx,
    actor: &Actor,
    source_id: Uuid,
    patch: SourcePatch,
) -> Result<dto::Source> {
    let (current, seq, role) = lock_for_write(tx, actor, source_id).await?;
    let vault_id = current.vault_id;
    if patch.version.is_some_and(|v| v != current.version) {
        return Err(AppError::Conflict(format!(
            "Source was changed meanwhile (current version {})",
            current.version
        )));
    }
    let mut update = sources::Entity::update_many()
        .col_expr(sources::Column::Version, Expr::value(current.version + 1))
        .col_expr(sources::Column::UpdatedAt, Expr::value(now()));
    if let Some(title) = patch.title {
        update = update.col_expr(sources::Column::Title, Expr::value(title.0));
    }
    if let Some(url) = patch.file_url {
        update = update.col_expr(sources::Column::FileUrl, Expr::value(url.0));
    }
    update
        .filter(sources::Column::Id.eq(source_id))
        .exec(&**tx)
        .await?;
    let source = dto::Source::from(&find(&**tx, source_id).await?);
    let change = events::Change::new(EventKind::SourceUpdated, json!({ "source": source }));
    events::append(tx, vault_id, seq, actor, role, change).await?;
    Ok(source)
}

/// Deletes a source; returns it as it was.
pub async fn delete(tx: &mut super::Tx, actor: &Actor, source_id: Uuid) -> Result<dto::Source> {
    let (current, seq, role) = lock_for_write(tx, actor, source_id).await?;
    let (vault_id, gone) = (current.vault_id, dto::Source::from(&current));
    sources::Entity::delete_by_id(source_id).exec(&**tx).await?;
    let change = events::Change::new(EventKind::SourceDeleted, json!({ "sourceId": source_id }));
    events::append(tx, vault_id, seq, actor, role, change).await?;
    Ok(gone)
}

/// Takes the next `seq` of the source's vault (locking it), checks that the actor may write
/// sources there, and re-reads the source under that lock, so version checks and deletes see
/// the latest row. Returns the source, the `seq` and the actor's role.
async fn lock_for_write(
    tx: &super::Tx,
    actor: &Actor,
    source_id: Uuid,
) -> Result<(sources::Model, i64, super::Role)> {
    let vault_id = find(&**tx, source_id).await?.vault_id;
    let (seq, role) = access::next_seq_requiring(tx, vault_id, actor.user_id, Action::WriteSources)
        .await
        .map_err(hide_vault)?;
    Ok((find(&**tx, source_id).await?, seq, role))
}

async fn find(db: &impl ConnectionTrait, source_id: Uuid) -> Result<sources::Model> {
    sources::Entity::find_by_id(source_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("Source not found"))
}

/// A source in a vault the caller cannot see does not exist, as far as the caller knows.
fn hide_vault(err: AppError) -> AppError {
    match err {
        AppError::NotFound(_) => AppError::NotFound("Source not found"),
        other => other,
    }
}
