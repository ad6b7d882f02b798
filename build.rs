//! Fetches the Socket.IO browser client from npm (pinned by src/pages/package-lock.json) into
//! OUT_DIR, so the binary serves it itself and nothing third-party is committed.
use std::{env, fs, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=src/pages/package.json");
    println!("cargo:rerun-if-changed=src/pages/package-lock.json");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let npm_dir = out.join("npm");
    let dist = npm_dir.join("node_modules/socket.io-client/dist/socket.io.min.js");
    let lock = fs::read("src/pages/package-lock.json").expect("src/pages/package-lock.json");
    let stamp = npm_dir.join("package-lock.json");
    if !dist.exists() || fs::read(&stamp).ok().as_deref() != Some(&lock[..]) {
        fs::create_dir_all(&npm_dir).expect("create OUT_DIR/npm");
        fs::copy("src/pages/package.json", npm_dir.join("package.json"))
            .expect("copy package.json");
        fs::write(&stamp, &lock).expect("copy package-lock.json");
        let status = Command::new("npm")
            .args([
                "ci",
                "--omit=dev",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
            ])
            .current_dir(&npm_dir)
            .status()
            .expect("npm is needed to build syncscript (it fetches the Socket.IO browser client)");
        assert!(status.success(), "npm ci failed in {}", npm_dir.display());
    }
    fs::copy(&dist, out.join("socket.io.min.js")).expect("socket.io.min.js");
}
