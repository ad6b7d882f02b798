//! Fetches the browser code the binary serves itself — the Socket.IO client and Swagger UI —
//! from npm (pinned by src/pages/package-lock.json) into OUT_DIR, so nothing third-party is
//! committed and no page loads anything from a CDN.
use std::{env, fs, path::PathBuf, process::Command};

/// Files taken from `node_modules`, each copied to OUT_DIR under its file name.
const FILES: &[&str] = &[
    "socket.io-client/dist/socket.io.min.js",
    "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui-dist/swagger-ui.css",
];

fn main() {
    println!("cargo:rerun-if-changed=src/pages/package.json");
    println!("cargo:rerun-if-changed=src/pages/package-lock.json");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let npm_dir = out.join("npm");
    let modules = npm_dir.join("node_modules");
    let lock = fs::read("src/pages/package-lock.json").expect("src/pages/package-lock.json");
    let stamp = npm_dir.join("package-lock.json");
    let missing = FILES.iter().any(|file| !modules.join(file).exists());
    if missing || fs::read(&stamp).ok().as_deref() != Some(&lock[..]) {
        fs::create_dir_all(&npm_dir).expect("create OUT_DIR/npm");
        fs::copy("src/pages/package.json", npm_dir.join("package.json"))
            .expect("copy package.json");
        fs::write(&stamp, &lock).expect("copy package-lock.json");
        // --ignore-scripts: no package runs code here (swagger-ui-dist's analytics dependency
        // would otherwise report the install).
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
            .expect("npm is needed to build syncscript (it fetches the browser code it serves)");
        assert!(status.success(), "npm ci failed in {}", npm_dir.display());
    }
    for file in FILES {
        let name = file.rsplit('/').next().expect("a file name");
        fs::copy(modules.join(file), out.join(name)).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}
