//! The whole data model: users, sessions, vaults, memberships, sources and the per-vault event log.
//! Runs unchanged on SQLite and PostgreSQL; every foreign key cascades from its owner.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(pk_uuid(Users::Id))
                // Stored lower-cased, so this unique index is case-insensitive.
                .col(string_len_uniq(Users::Email, 320))
                .col(string_len(Users::Name, 200))
                .col(string(Users::PasswordHash))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .if_not_exists()
                .col(pk_uuid(Sessions::Id))
                .col(uuid(Sessions::UserId))
                .col(string_len_uniq(Sessions::TokenHash, 64))
                .col(timestamp_with_time_zone(Sessions::CreatedAt))
                .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                .col(timestamp_with_time_zone(Sessions::LastSeenAt))
                .foreign_key(&mut cascade(
                    "fk_sessions_user",
                    Sessions::Table,
                    Sessions::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .to_owned(),
        )
        .await?;
        index(m, "idx_sessions_user", Sessions::Table, Sessions::UserId).await?;
        index(
            m,
            "idx_sessions_expires",
            Sessions::Table,
            Sessions::ExpiresAt,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Vaults::Table)
                .if_not_exists()
                .col(pk_uuid(Vaults::Id))
                .col(string_len(Vaults::Name, 200))
                .col(string_len(Vaults::Description, 2000))
                // The last `seq` handed out in this vault's event log; bumping it locks the vault row.
                .col(big_integer(Vaults::LastSeq).default(0))
                .col(timestamp_with_time_zone(Vaults::CreatedAt))
                .col(timestamp_with_time_zone(Vaults::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Memberships::Table)
                .if_not_exists()
                .col(uuid(Memberships::VaultId))
                .col(uuid(Memberships::UserId))
                .col(string_len(Memberships::Role, 16))
                .col(timestamp_with_time_zone(Memberships::JoinedAt))
                .primary_key(
                    Index::create()
                        .col(Memberships::VaultId)
                        .col(Memberships::UserId),
                )
                .foreign_key(&mut cascade(
                    "fk_memberships_vault",
                    Memberships::Table,
                    Memberships::VaultId,
                    Vaults::Table,
                    Vaults::Id,
                ))
                .foreign_key(&mut cascade(
                    "fk_memberships_user",
                    Memberships::Table,
                    Memberships::UserId,
                    Users::Table,
                    Users::Id,
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "idx_memberships_user",
            Memberships::Table,
            Memberships::UserId,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sources::Table)
                .if_not_exists()
                .col(pk_uuid(Sources::Id))
                .col(uuid(Sources::VaultId))
                .col(string_len(Sources::Title, 300))
                .col(string_len(Sources::FileUrl, 2048))
                .col(uuid_null(Sources::CreatedBy))
                // The `seq` of the event that created it: orders the list newest first, stably.
                .col(big_integer(Sources::CreatedSeq))
                .col(integer(Sources::Version))
                .col(timestamp_with_time_zone(Sources::CreatedAt))
                .col(timestamp_with_time_zone(Sources::UpdatedAt))
                .foreign_key(&mut cascade(
                    "fk_sources_vault",
                    Sources::Table,
                    Sources::VaultId,
                    Vaults::Table,
                    Vaults::Id,
                ))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_sources_creator")
                        .from(Sources::Table, Sources::CreatedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_sources_vault_seq")
                .table(Sources::Table)
                .col(Sources::VaultId)
                .col(Sources::CreatedSeq)
                .unique()
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Events::Table)
                .if_not_exists()
                .col(uuid(Events::VaultId))
                .col(big_integer(Events::Seq))
                .col(string_len(Events::EventType, 32))
                .col(uuid_null(Events::ActorId))
                .col(json_binary(Events::Payload))
                .col(timestamp_with_time_zone(Events::CreatedAt))
                // (vault, seq) is the key: a duplicate seq in one vault cannot be written.
                .primary_key(Index::create().col(Events::VaultId).col(Events::Seq))
                .foreign_key(&mut cascade(
                    "fk_events_vault",
                    Events::Table,
                    Events::VaultId,
                    Vaults::Table,
                    Vaults::Id,
                ))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_events_actor")
                        .from(Events::Table, Events::ActorId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Events::Table.into_iden(),
            Sources::Table.into_iden(),
            Memberships::Table.into_iden(),
            Vaults::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

fn cascade(
    name: &str,
    from: impl IntoIden,
    from_col: impl IntoIden,
    to: impl IntoIden,
    to_col: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from, from_col)
        .to(to, to_col)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

async fn index(
    m: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden,
    col: impl IntoIden,
) -> Result<(), DbErr> {
    m.create_index(
        Index::create()
            .if_not_exists()
            .name(name)
            .table(table)
            .col(col)
            .to_owned(),
    )
    .await
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    TokenHash,
    CreatedAt,
    ExpiresAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum Vaults {
    Table,
    Id,
    Name,
    Description,
    LastSeq,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    VaultId,
    UserId,
    Role,
    JoinedAt,
}

#[derive(DeriveIden)]
enum Sources {
    Table,
    Id,
    VaultId,
    Title,
    FileUrl,
    CreatedBy,
    CreatedSeq,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    VaultId,
    Seq,
    EventType,
    ActorId,
    Payload,
    CreatedAt,
}
