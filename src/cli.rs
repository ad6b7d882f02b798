//! The command line: `serve` (default), `migrate`, `user create`.
use std::io::Read;

use clap::{Parser, Subcommand};

use crate::{
    db,
    domain::{passwords::Passwords, users},
    settings::Settings,
};

#[derive(Parser)]
#[command(
    name = "syncscript",
    version,
    about = "SyncScript Vault: shared source vaults with real-time collaboration"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve HTTP and Socket.IO (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (for deployments with registration closed).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

pub async fn migrate(settings: &Settings) -> Result<(), String> {
    let conn = db::connect(&settings.database)
        .await
        .map_err(|e| format!("database: {e}"))?;
    db::migrate(&conn)
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    println!("migrations applied");
    Ok(())
}

pub async fn create_user(settings: &Settings, email: &str, name: &str) -> Result<(), String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| format!("reading the password: {e}"))?;
    let password = password.lines().next().unwrap_or_default().to_string();
    let new = users::NewUser::parse(email, name, &password).map_err(|e| describe(&e))?;
    let conn = db::connect(&settings.database)
        .await
        .map_err(|e| format!("database: {e}"))?;
    db::migrate(&conn)
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    let user = users::create(&conn, &Passwords::new(), new)
        .await
        .map_err(|e| describe(&e))?;
    println!("created user {} <{}> ({})", user.name, user.email, user.id);
    Ok(())
}

fn describe(e: &crate::error::AppError) -> String {
    match e {
        crate::error::AppError::Validation { details, .. } => details
            .iter()
            .map(|d| format!("{} {}", d.field, d.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}
