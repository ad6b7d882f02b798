//! Failed logins in the database, so that every node counts them (CONTRACT §9): one row per
//! failure under a fixed-length key (a hash of the email or of the client's network), swept
//! once the failure window has passed.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(LoginFailures::Table)
                .if_not_exists()
                .col(pk_uuid(LoginFailures::Id))
                .col(string_len(LoginFailures::Key, 64))
                .col(timestamp_with_time_zone(LoginFailures::FailedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_login_failures_key")
                .table(LoginFailures::Table)
                .col(LoginFailures::Key)
                .col(LoginFailures::FailedAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(LoginFailures::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}

#[derive(DeriveIden)]
enum LoginFailures {
    Table,
    Id,
    Key,
    FailedAt,
}
