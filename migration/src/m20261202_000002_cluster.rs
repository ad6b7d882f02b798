//! What the nodes of one service share besides the data (CONTRACT §9): which nodes are alive
//! (their heartbeats), who is online through which node, and how many sockets each user has
//! on each node. On PostgreSQL the tables are UNLOGGED: they describe live connections, which
//! a database crash ends anyway. SQLite (one node) has them too, unused.
use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Nodes::Table)
                .if_not_exists()
                .col(pk_uuid(Nodes::Id))
                .col(timestamp_with_time_zone(Nodes::HeartbeatAt))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Presence::Table)
                .if_not_exists()
                .col(uuid(Presence::VaultId))
                .col(uuid(Presence::UserId))
                .col(uuid(Presence::NodeId))
                .col(string_len(Presence::UserName, 200))
                .col(string_len(Presence::Role, 16))
                .primary_key(
                    Index::create()
                        .col(Presence::VaultId)
                        .col(Presence::UserId)
                        .col(Presence::NodeId),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(SocketSlots::Table)
                .if_not_exists()
                .col(uuid(SocketSlots::UserId))
                .col(uuid(SocketSlots::NodeId))
                .col(integer(SocketSlots::Sockets))
                .primary_key(
                    Index::create()
                        .col(SocketSlots::UserId)
                        .col(SocketSlots::NodeId),
                )
                .to_owned(),
        )
        .await?;
        if m.get_database_backend() == DbBackend::Postgres {
            let db = m.get_connection();
            for table in ["nodes", "presence", "socket_slots"] {
                db.execute_unprepared(&format!("ALTER TABLE {table} SET UNLOGGED"))
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SocketSlots::Table.into_iden(),
            Presence::Table.into_iden(),
            Nodes::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Nodes {
    Table,
    Id,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum Presence {
    Table,
    VaultId,
    UserId,
    NodeId,
    UserName,
    Role,
}

#[derive(DeriveIden)]
enum SocketSlots {
    Table,
    UserId,
    NodeId,
    Sockets,
}
