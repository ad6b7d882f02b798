//! REST at saturation: `--rest-conns` connections (default 32), each sending its next request
//! as soon as the last one answers, for `--rest-secs`, after a one-second warm-up. Each request
//! goes to a random seeded vault as that vault's committing member: `POST …/sources` (a
//! commit) or `GET …/sources?limit=20`. Server CPU per request is its utime + stime over the
//! measured run divided by the requests answered.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rand::Rng;
use serde_json::json;
use tokio::task::JoinSet;

use crate::{
    seed::World,
    stats::{pct, shorten},
    sys::Cpu,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Post,
    Get,
}

impl Call {
    pub fn label(self) -> &'static str {
        match self {
            Call::Post => "POST /api/vaults/{id}/sources",
            Call::Get => "GET /api/vaults/{id}/sources?limit=20",
        }
    }
}

#[derive(Default, Clone)]
pub struct RestRun {
    pub ok: usize,
    pub failures: BTreeMap<String, usize>,
    pub wall: Duration,
    pub server_cpu: Cpu,
    pub client_cpu: Cpu,
    /// Round trips, sorted.
    pub lat: Vec<Duration>,
}

impl RestRun {
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Server CPU (user + system) per answered request, in µs.
    pub fn cpu_us(&self) -> f64 {
        self.server_cpu.total().as_secs_f64() * 1e6 / self.ok.max(1) as f64
    }

    pub fn p99_ms(&self) -> f64 {
        pct(&self.lat, 99.0).as_secs_f64() * 1000.0
    }
}

pub async fn saturate(
    base: &str,
    world: &World,
    pid: u32,
    call: Call,
    conns: usize,
    secs: f64,
) -> RestRun {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(conns)
        .build()
        .unwrap();
    eprintln!(
        "REST: {} on {conns} connections for {secs} s…",
        call.label()
    );
    let _ = load(&http, base, world, pid, call, conns, 1.0).await;
    load(&http, base, world, pid, call, conns, secs).await
}

async fn load(
    http: &reqwest::Client,
    base: &str,
    world: &World,
    pid: u32,
    call: Call,
    conns: usize,
    secs: f64,
) -> RestRun {
    // Each worker's requests, prepared up front: (vault, cookie).
    let targets: Vec<(String, String)> = (0..world.vaults.len())
        .map(|v| (world.vaults[v].to_string(), world.writer_cookie(v)))
        .collect();
    let targets = std::sync::Arc::new(targets);
    let (cpu0, client0) = (Cpu::of(Some(pid)), Cpu::of(None));
    let began = Instant::now();
    let until = began + Duration::from_secs_f64(secs);
    let mut set = JoinSet::new();
    for w in 0..conns {
        let (http, base, targets) = (http.clone(), base.to_string(), targets.clone());
        set.spawn(async move {
            let mut run = RestRun::default();
            let mut k = 0usize;
            while Instant::now() < until {
                let (vault, cookie) = &targets[rand::rng().random_range(0..targets.len())];
                let title = format!("rest w{w} #{k}");
                let t0 = Instant::now();
                match one(&http, &base, vault, cookie, call, &title).await {
                    Ok(()) => {
                        run.ok += 1;
                        run.lat.push(t0.elapsed());
                    }
                    Err(e) => *run.failures.entry(shorten(&e)).or_insert(0) += 1,
                }
                k += 1;
            }
            run
        });
    }
    let mut total = RestRun::default();
    while let Some(Ok(run)) = set.join_next().await {
        total.ok += run.ok;
        total.lat.extend(run.lat);
        for (f, n) in run.failures {
            *total.failures.entry(f).or_insert(0) += n;
        }
    }
    total.wall = began.elapsed();
    total.server_cpu = Cpu::of(Some(pid)).since(cpu0);
    total.client_cpu = Cpu::of(None).since(client0);
    total.lat.sort_unstable();
    total
}

async fn one(
    http: &reqwest::Client,
    base: &str,
    vault: &str,
    cookie: &str,
    call: Call,
    title: &str,
) -> Result<(), String> {
    let url = format!("{base}/api/vaults/{vault}/sources");
    let req = match call {
        Call::Post => http
            .post(url)
            .json(&json!({ "title": title, "fileUrl": "https://example.com/a.pdf" })),
        Call::Get => http.get(format!("{url}?limit=20")),
    };
    let resp = req
        .header("cookie", cookie)
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    let want = if call == Call::Post { 201 } else { 200 };
    let status = resp.status();
    // The body is read in full either way: a real client would.
    let body = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
    if status != want {
        return Err(format!("{status} {:.80}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}
