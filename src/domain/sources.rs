//! Sources: the documents of a vault, created, read, updated and deleted with the events they
//! cause; their pages are in [`page`].
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait, prelude::Expr};
use serde_json::json;
use uuid::Uuid;

use super::{
    Actor,
    access::{self, Action},
    dto,
    events::{self, EventKind},
    input, now,
};
use crate::{
    db::BuiltOnce,
    error::{AppError, Result},
};
use entities::sources;

mod page;
pub use page::{Page, decode_cursor, encode_cursor, list};

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
    static BUILT: BuiltOnce = BuiltOnce::new();
    let backend = tx.backend();
    let values = vec![
        model.id.into(),
        vault_id.into(),
        model.title.clone().into(),
        model.file_url.clone().into(),
        model.created_by.into(),
        seq.into(),
        1.into(),
        at.into(),
        at.into(),
    ];
    let insert = BUILT.statement(backend, values, || {
        sources::Entity::insert(sources::ActiveModel::from(model.clone())).build(backend)
    });
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
