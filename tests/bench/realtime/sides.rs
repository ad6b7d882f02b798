//! The servers a real-shape run compares: this project's binary and, with `--peer`, the Node
//! peer's launcher, each started on its own SQLite file.
use std::path::PathBuf;

use crate::{Bench, seed_db, server};

/// A server under test: this project's binary, or the Node peer's launcher.
#[derive(Clone)]
pub struct Side {
    pub name: &'static str,
    pub bin: PathBuf,
    pub schema: seed_db::Schema,
}

impl Bench {
    /// This project's server, then the Node peer when `--peer` / `PEER_BIN` names it.
    pub fn sides(&self) -> Vec<Side> {
        let mut sides = vec![Side {
            name: "rust",
            bin: self.bin.clone(),
            schema: seed_db::Schema::Ours,
        }];
        if let Some(peer) = &self.args.peer {
            sides.push(Side {
                name: "node",
                bin: peer.clone(),
                schema: seed_db::Schema::Peer,
            });
        }
        sides
    }

    /// One node of `side` on a fresh SQLite file in `dir`.
    pub fn side_node(&self, side: &Side, dir: &std::path::Path) -> server::Spec {
        let mut spec = self.sqlite_node(dir);
        spec.name = side.name.to_string();
        spec.bin = side.bin.clone();
        spec.log = dir.join(format!("{}.log", side.name));
        spec
    }
}
