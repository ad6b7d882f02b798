//! Schema migrations, applied by `syncscript serve` / `syncscript migrate` and by this crate's CLI.
pub use sea_orm_migration::prelude::*;

mod m20261125_000001_init;
mod m20261202_000001_login_failures;
mod m20261202_000002_cluster;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_init::Migration),
            Box::new(m20261202_000001_login_failures::Migration),
            Box::new(m20261202_000002_cluster::Migration),
        ]
    }
}
