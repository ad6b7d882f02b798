//! Pages of a vault's sources, newest first by the `seq` of each one's creation event (stable
//! while new sources arrive), and their cursors. On SQLite a page is read through [`Reads`].
use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

use crate::{
    db::{Reads, reads},
    domain::{
        Actor,
        access::{self, Action},
        dto,
    },
    error::{AppError, Result},
};

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

/// A page of the vault's sources; with `reads` (SQLite) read through it, else through `db`.
pub async fn list(
    db: &impl ConnectionTrait,
    reads: Option<&Reads>,
    actor: &Actor,
    vault_id: Uuid,
    limit: u64,
    cursor: Option<i64>,
) -> Result<Page> {
    // The membership is checked inside the page's own query; only an empty page asks again,
    // to tell a vault without sources from one the caller cannot see.
    let before = cursor.unwrap_or(i64::MAX);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let rows = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    // Only the rows shown are decoded; the one more asked for only says there are more.
    let mut page = Vec::new();
    let mut more = false;
    if let Some(reads) = reads {
        reads.run(|conn| {
            let mut stmt = conn.prepare_cached(PAGE_SQL)?;
            let mut found = stmt.query(rusqlite::named_params! {
                "$1": vault_id.as_bytes(), "$2": before, "$3": actor.user_id.as_bytes(), "$4": rows,
            })?;
            while let Some(row) = found.next()? {
                if page.len() == take {
                    more = true;
                    break;
                }
                page.push(sqlite_page_row(row, vault_id)?);
            }
            Ok(())
        })?;
    } else {
        let values = [
            vault_id.into(),
            before.into(),
            actor.user_id.into(),
            rows.into(),
        ];
        let stmt = Statement::from_sql_and_values(db.get_database_backend(), PAGE_SQL, values);
        let found = db.query_all_raw(stmt).await?;
        more = found.len() > take;
        for row in found.iter().take(take) {
            page.push(page_row(row, vault_id)?);
        }
    }
    if page.is_empty() {
        access::require(db, vault_id, actor.user_id, Action::Read).await?;
    }
    let next_cursor = page
        .last()
        .filter(|_| more)
        .map(|(_, seq)| encode_cursor(*seq));
    Ok(Page {
        sources: page.into_iter().map(|(source, _)| source).collect(),
        next_cursor,
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

/// [`page_row`] for a row read through [`Reads`], in the formats sqlx stored the values in.
fn sqlite_page_row(
    row: &rusqlite::Row<'_>,
    vault_id: Uuid,
) -> rusqlite::Result<(dto::Source, i64)> {
    let source = dto::Source {
        id: reads::uuid(row, 0)?,
        vault_id,
        title: row.get(1)?,
        file_url: row.get(2)?,
        created_by: reads::uuid_or_null(row, 3)?,
        created_at: reads::timestamp(row, 4)?,
        updated_at: reads::timestamp(row, 5)?,
        version: row.get(6)?,
    };
    Ok((source, row.get(7)?))
}
