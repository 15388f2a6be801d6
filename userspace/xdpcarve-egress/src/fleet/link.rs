//! The connection to Redis (one server, or a Redis Cluster), and whether it is up.
//!
//! The link is up while a connection answers. Any failed or slow call (past `fleet.timeout`)
//! takes it down: callers then decide locally, and one reconnect task tries again, waiting
//! 100 ms, then twice as long each time up to `fleet.reconnect_max_delay`. Our own loop rather
//! than the crate's connection manager, because the sensor must *know* when Redis is gone (to
//! switch dedup to local, to spill the stream, and to say so in `/metrics`), not retry inside a
//! call that a worker's record waits on.

use super::FleetMetrics;
use crate::config::FleetConfig;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// A connection to one server or to a cluster; cheap to clone (both multiplex one socket per node).
#[derive(Clone)]
pub enum Conn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        p: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(p, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(p, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// An error setting up the fleet: each message names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("fleet.redis `{url}`: not a usable Redis URL")]
    Url {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("fleet.password_file {}: cannot read it", path.display())]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("fleet.password_file {}: empty", .0.display())]
    PasswordEmpty(PathBuf),
    #[error("fleet.tls_ca_file {}: cannot read it", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("fleet.redis: cannot set up the Redis Cluster client")]
    Cluster(#[source] redis::RedisError),
}

/// How to connect: built once from the settings (so a bad URL or unreadable password file is an
/// error at start, not a reconnect loop).
pub enum Target {
    Single(Box<redis::Client>),
    Cluster(Box<redis::cluster::ClusterClient>),
}

fn read_password(path: &Path) -> Result<String, FleetError> {
    let text = std::fs::read_to_string(path).map_err(|source| FleetError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    let pw = text.lines().next().unwrap_or("").trim_end_matches('\r').to_string();
    if pw.is_empty() {
        return Err(FleetError::PasswordEmpty(path.to_path_buf()));
    }
    Ok(pw)
}

impl Target {
    pub fn new(cfg: &FleetConfig, timeout: Duration) -> Result<Target, FleetError> {
        let password = cfg.password_file.as_deref().map(read_password).transpose()?;
        let ca = match &cfg.tls_ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|source| FleetError::CaFile {
                path: p.clone(),
                source,
            })?),
            None => None,
        };
        let urls = cfg.urls();
        let infos = urls
            .iter()
            .map(|u| {
                let info = redis::IntoConnectionInfo::into_connection_info(u.as_str())
                    .map_err(|source| FleetError::Url { url: u.clone(), source })?;
                let mut redis = info.redis_settings().clone();
                if let Some(pw) = &password {
                    redis = redis.set_password(pw);
                }
                if let Some(user) = &cfg.username {
                    redis = redis.set_username(user);
                }
                Ok(info.set_redis_settings(redis))
            })
            .collect::<Result<Vec<_>, FleetError>>()?;
        if cfg.is_cluster() {
            let mut b = redis::cluster::ClusterClientBuilder::new(infos)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1);
            if let Some(pw) = &password {
                b = b.password(pw);
            }
            if let Some(user) = &cfg.username {
                b = b.username(user);
            }
            if let Some(ca) = ca {
                b = b.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                });
            }
            return Ok(Target::Cluster(Box::new(b.build().map_err(FleetError::Cluster)?)));
        }
        let info = infos.into_iter().next().expect("validated: one URL at least");
        let client = match ca {
            Some(ca) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca),
                },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|source| FleetError::Url {
            url: urls[0].clone(),
            source,
        })?;
        Ok(Target::Single(Box::new(client)))
    }

    async fn connect(&self, timeout: Duration) -> redis::RedisResult<Conn> {
        match self {
            Target::Single(c) => {
                let cfg = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let mut conn = Conn::Single(c.get_multiplexed_async_connection_with_config(&cfg).await?);
                redis::cmd("PING").query_async::<()>(&mut conn).await?;
                // The stream's pipelines call the sightings script by its hash (EVALSHA).
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(super::SIGHT_LUA)
                    .query_async::<String>(&mut conn)
                    .await?;
                Ok(conn)
            }
            Target::Cluster(c) => {
                let mut conn = Conn::Cluster(c.get_async_connection().await?);
                redis::cmd("PING").query_async::<()>(&mut conn).await?;
                Ok(conn)
            }
        }
    }
}

/// Why a call did not succeed.
#[derive(Debug)]
pub enum CallError {
    Redis(redis::RedisError),
    Timeout(Duration),
    Down,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Redis(e) => {
                // A failed pipeline lists every command's error: the first says it.
                let text = e.to_string();
                let cut = text.char_indices().nth(240).map_or(text.len(), |(i, _)| i);
                write!(f, "{}", &text[..cut])?;
                if cut < text.len() {
                    write!(f, " ... (the rest cut)")?;
                }
                Ok(())
            }
            CallError::Timeout(t) => write!(f, "no answer within {t:?} (fleet.timeout)"),
            CallError::Down => write!(f, "not connected"),
        }
    }
}

/// The shared link: the current connection (when up), the reconnect task's wake-up.
pub struct Link {
    conn: Mutex<Option<Conn>>,
    up: watch::Sender<bool>,
    lost: Notify,
    timeout: Duration,
    pub(crate) metrics: FleetMetrics,
    /// What to call the server(s) in messages (the URLs without credentials).
    pub(crate) name: String,
}

impl Link {
    pub fn new(timeout: Duration, metrics: FleetMetrics, name: String) -> Arc<Link> {
        metrics.up.set(0);
        Arc::new(Link {
            conn: Mutex::new(None),
            up: watch::Sender::new(false),
            lost: Notify::new(),
            timeout,
            metrics,
            name,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Resolves when the link is up (at once if it is).
    pub async fn wait_up(&self) {
        let mut rx = self.up.subscribe();
        let _ = rx.wait_for(|up| *up).await;
    }

    fn conn(&self) -> Option<Conn> {
        self.conn.lock().expect("fleet conn").clone()
    }

    /// Runs one call against the current connection, within `fleet.timeout`; a failure takes the
    /// link down (the reconnect task takes over).
    pub async fn call<T, F, Fut>(&self, f: F) -> Result<T, CallError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let Some(conn) = self.conn() else {
            return Err(CallError::Down);
        };
        let err = match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => CallError::Redis(e),
            Err(_) => CallError::Timeout(self.timeout),
        };
        self.metrics.errors.inc();
        self.down(&err);
        Err(err)
    }

    fn down(&self, why: &CallError) {
        let was = self.conn.lock().expect("fleet conn").take().is_some();
        if was {
            self.up.send_replace(false);
            self.metrics.up.set(0);
            tracing::error!(
                "fleet: Redis {} failed ({why}); deciding dedup locally and keeping records for the stream until it is back",
                self.name
            );
            self.lost.notify_one();
        }
    }

    /// Connects, and reconnects whenever the link goes down, until `stop`.
    pub async fn keep_connected(self: Arc<Link>, target: Target, max_delay: Duration, mut stop: watch::Receiver<bool>) {
        let first = Duration::from_millis(100);
        let mut delay = first;
        let mut failures: u64 = 0;
        let mut connected_before = false;
        let mut up_since = std::time::Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            if self.is_up() {
                tokio::select! {
                    _ = self.lost.notified() => {}
                    _ = stop.changed() => return,
                }
                // Down soon after coming up: Redis answers PING but fails the work (out of
                // memory, a key of the wrong type). Back off as after a failed connect, so the
                // link does not flap as fast as calls fail; a link that stayed up starts afresh.
                if up_since.elapsed() < max_delay {
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => return,
                    }
                    delay = (delay * 2).min(max_delay);
                } else {
                    delay = first;
                }
                continue;
            }
            let attempt =
                tokio::time::timeout(self.timeout.max(Duration::from_secs(1)), target.connect(self.timeout)).await;
            match attempt {
                Ok(Ok(conn)) => {
                    *self.conn.lock().expect("fleet conn") = Some(conn);
                    self.metrics.up.set(1);
                    self.up.send_replace(true);
                    if connected_before {
                        self.metrics.reconnects.inc();
                        tracing::info!("fleet: Redis {} is back (after {failures} failed attempts)", self.name);
                    } else {
                        tracing::info!("fleet: connected to Redis {}", self.name);
                    }
                    connected_before = true;
                    failures = 0;
                    up_since = std::time::Instant::now();
                    continue;
                }
                Ok(Err(e)) => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::warn!(
                            "fleet: cannot connect to Redis {} ({e}); attempt {failures}, retrying every {:?} at most",
                            self.name,
                            max_delay
                        );
                    }
                }
                Err(_) => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::warn!(
                            "fleet: Redis {} does not answer within {:?}; attempt {failures}",
                            self.name,
                            self.timeout
                        );
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return,
            }
            delay = (delay * 2).min(max_delay);
        }
    }
}

/// The URLs without user or password, for messages.
pub fn display_urls(urls: &[String]) -> String {
    urls.iter()
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(s), Some(at)) if at > s => format!("{}{}", &u[..s + 3], &u[at + 1..]),
            _ => u.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Why [`probe`] found the fleet unusable.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Setup(#[from] FleetError),
    #[error("{name}: {source}")]
    Connect {
        name: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("{name}: no answer within {timeout:?}")]
    Timeout { name: String, timeout: Duration },
    #[error("cannot start a runtime for the check")]
    Runtime(#[source] std::io::Error),
}

/// For `xdpcarve check`: builds the client as a run would (URL, password file, CA file) and
/// connects once, within `timeout`. Returns the servers' names (without credentials).
pub fn probe(cfg: &FleetConfig, timeout: Duration) -> Result<String, ProbeError> {
    let target = Target::new(cfg, timeout)?;
    let name = display_urls(&cfg.urls());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ProbeError::Runtime)?;
    rt.block_on(async {
        match tokio::time::timeout(timeout, target.connect(timeout)).await {
            Ok(Ok(_)) => Ok(name),
            Ok(Err(source)) => Err(ProbeError::Connect { name, source }),
            Err(_) => Err(ProbeError::Timeout { name, timeout }),
        }
    })
}
