//! Typed configuration: an optional TOML file, then environment overrides.
//!
//! | key (TOML)              | environment                    | default                                      |
//! |-------------------------|--------------------------------|----------------------------------------------|
//! | `database_url`          | `DATABASE_URL`                 | `postgres://jasiyo@127.0.0.1:55432/jasiyo`   |
//! | `listen`                | `JASIYO_LISTEN`                | `127.0.0.1:8088`                             |
//! | `snapshot_dir`          | `JASIYO_SNAPSHOT_DIR`          | `/var/lib/jasiyo/snapshot`                   |
//! | `snapshot_group`        | `JASIYO_SNAPSHOT_GROUP`        | `freerad` (empty: leave the group alone)     |
//! | `log`                   | `JASIYO_LOG`                   | `info` (an `EnvFilter` directive)            |
//! | (file only: none)       | `JASIYO_CONFIG`                | path of this TOML file (same as `--config`)  |
//! | `log_format`            | `JASIYO_LOG_FORMAT`            | `text` (`text` or `json`)                    |
//! | `radius_public_address` | `JASIYO_RADIUS_PUBLIC_ADDRESS` | `127.0.0.1` (used in RouterOS scripts)       |
//! | `radius_auth_port`      | `JASIYO_RADIUS_AUTH_PORT`      | `1812`                                       |
//! | `radius_acct_port`      | `JASIYO_RADIUS_ACCT_PORT`      | `1813`                                       |
//! | `journal_path`          | `JASIYO_JOURNAL_PATH`          | `/var/lib/jasiyo/journal/accounting.journal` |
//! | `journal_capacity`      | `JASIYO_JOURNAL_CAPACITY`      | `64M` (bytes, or with a K/M/G suffix)        |
//! | `coa_timeout`           | `JASIYO_COA_TIMEOUT`           | `2` s: first wait for a router's answer      |
//! | `coa_max_timeout`       | `JASIYO_COA_MAX_TIMEOUT`       | `16` s: longest wait between retransmissions |
//! | `coa_transmissions`     | `JASIYO_COA_TRANSMISSIONS`     | `5`: most transmissions of one request       |
//! | `coa_max_duration`      | `JASIYO_COA_MAX_DURATION`      | `30` s: longest one exchange lasts           |
//! | `enforcement_rounds`    | `JASIYO_ENFORCEMENT_ROUNDS`    | `5` exchanges for an unanswered Disconnect   |
//! | `enforcement_round_backoff` | `JASIYO_ENFORCEMENT_ROUND_BACKOFF` | `60` s before the 2nd round, doubling |
//!
//! Durations are seconds (decimals allowed: `0.2`). The `coa_*` four are RFC 5080's IRT,
//! MRT, MRC and MRD, and their defaults are the RFC's.
//! | `stale_sweep_interval`  | `JASIYO_STALE_SWEEP_INTERVAL`  | `60` (seconds between stale-session sweeps)  |
//! | `default_interim_interval` | `JASIYO_DEFAULT_INTERIM_INTERVAL` | `300` (seconds; assumed when a router sends no Acct-Interim-Interval) |
//! | `voucher_key_file`      | `JASIYO_VOUCHER_KEY_FILE`      | `/var/lib/jasiyo/voucher.key` (created if missing) |
//! | `isp_name`              | `JASIYO_ISP_NAME`              | `Jasiyo` (printed on vouchers)               |
//! | `public_url`            | `JASIYO_PUBLIC_URL`            | none: how phones and Safaricom reach the daemon (the hotspot page's API address; also `[mpesa]`'s) |
//! | `isp_name`              | `JASIYO_ISP_NAME`              | `Jasiyo` (printed on vouchers and shown on the hotspot page) |
//! | `portal_purchases_per_ip_per_minute` | `JASIYO_PORTAL_PURCHASES_PER_IP_PER_MINUTE` | `10` purchases started from one address |
//! | `portal_purchases_per_phone_per_hour` | `JASIYO_PORTAL_PURCHASES_PER_PHONE_PER_HOUR` | `5` purchases for one phone |
//! | `portal_polls_per_ip_per_minute` | `JASIYO_PORTAL_POLLS_PER_IP_PER_MINUTE` | `120` status polls from one address |
//!
//! The journal's directory is created mode 0750 and the file 0660, both with the snapshot
//! group (radiusd's), so the module can append.
//!
//! The voucher key file (64 hex digits, see `jasiyo_snapshot::voucher`) is read by the
//! daemon and radiusd alike. A missing one is created (mode 0640, the snapshot group) at
//! `serve`; a malformed one stops the daemon (see [`crate::vouchers::key`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use crate::enforcement::EnforcementConfig;
use crate::enforcement::dynauth::RetryPolicy;
use crate::payments::config::{MpesaFile, MpesaSettings};

/// Default database URL (the project's private cluster).
pub const DEFAULT_DATABASE_URL: &str = "postgres://jasiyo@127.0.0.1:55432/jasiyo";

/// Default `JASIYO_LOG`: info, without Postgres' NOTICE chatter ("relation already exists").
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => bail!("JASIYO_LOG_FORMAT must be text or json, not {other:?}"),
        }
    }
}

/// The config file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    snapshot_dir: Option<PathBuf>,
    snapshot_group: Option<String>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    radius_public_address: Option<String>,
    radius_auth_port: Option<u16>,
    radius_acct_port: Option<u16>,
    journal_path: Option<PathBuf>,
    journal_capacity: Option<ByteSize>,
    coa_timeout: Option<f64>,
    coa_max_timeout: Option<f64>,
    coa_transmissions: Option<u32>,
    coa_max_duration: Option<f64>,
    enforcement_rounds: Option<u32>,
    enforcement_round_backoff: Option<f64>,
    mpesa: Option<MpesaFile>,
    stale_sweep_interval: Option<u32>,
    default_interim_interval: Option<u32>,
    voucher_key_file: Option<PathBuf>,
    isp_name: Option<String>,
    public_url: Option<String>,
    portal_purchases_per_ip_per_minute: Option<u32>,
    portal_purchases_per_phone_per_hour: Option<u32>,
    portal_polls_per_ip_per_minute: Option<u32>,
}

/// Rate limits of the public portal API (the hotspot login page), per client address and
/// per phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortalLimits {
    /// Purchases started from one address per minute (a router that NATs its hotspot
    /// clients shows all of them as one address).
    pub purchases_per_ip_per_minute: u32,
    /// Purchases for one phone per hour.
    pub purchases_per_phone_per_hour: u32,
    /// Status polls from one address per minute (the page polls every 2 s).
    pub polls_per_ip_per_minute: u32,
}

impl Default for PortalLimits {
    fn default() -> Self {
        Self {
            purchases_per_ip_per_minute: 10,
            purchases_per_phone_per_hour: 5,
            polls_per_ip_per_minute: 120,
        }
    }
}

pub use crate::accounting::DEFAULT_INTERIM_INTERVAL_SECS;
/// Default time between stale-session sweeps.
pub const DEFAULT_STALE_SWEEP_SECS: u32 = 60;

/// Default journal file.
pub const DEFAULT_JOURNAL_PATH: &str = "/var/lib/jasiyo/journal/accounting.journal";
/// Default voucher key file.
pub const DEFAULT_VOUCHER_KEY_FILE: &str = "/var/lib/jasiyo/voucher.key";
/// Default name printed on vouchers.
pub const DEFAULT_ISP_NAME: &str = "Jasiyo";
/// Default journal ring size: 64 MiB, about 200,000 accounting packets (minutes of a
/// large ISP's peak with the daemon or Postgres down).
pub const DEFAULT_JOURNAL_CAPACITY: u64 = 64 << 20;

/// A byte count in the config file: a number, or a string with an optional K/M/G suffix.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ByteSize {
    Number(u64),
    Text(String),
}

impl ByteSize {
    fn bytes(&self, key: &str) -> anyhow::Result<u64> {
        match self {
            Self::Number(n) => Ok(*n),
            Self::Text(s) => parse_byte_size(s).with_context(|| format!("{key} {s:?}")),
        }
    }
}

/// Parses `65536`, `64K`, `64M`, `1G` (binary units; `KiB`/`MiB`/`GiB` and lower case
/// accepted).
pub fn parse_byte_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("not a byte count (e.g. 67108864 or 64M)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        other => bail!("unknown unit {other:?} (use K, M or G)"),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| anyhow::anyhow!("too large"))
}

/// Where the routers should send RADIUS (only used to write RouterOS scripts).
#[derive(Debug, Clone)]
pub struct RadiusSettings {
    /// Address the routers reach FreeRADIUS at.
    pub public_address: String,
    /// Authentication port.
    pub auth_port: u16,
    /// Accounting port.
    pub acct_port: u16,
}

/// Everything the daemon needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Postgres URL (may hold a password: never log it).
    pub database_url: SecretString,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Snapshot directory shared with rlm_jasiyo.
    pub snapshot_dir: PathBuf,
    /// Group allowed to read the snapshot (`None`: leave the group alone).
    pub snapshot_group: Option<String>,
    /// `EnvFilter` directive.
    pub log: String,
    /// Log format.
    pub log_format: LogFormat,
    /// RADIUS server as routers see it.
    pub radius: RadiusSettings,
    /// The accounting journal file shared with rlm_jasiyo.
    pub journal_path: PathBuf,
    /// Its ring size in bytes (a multiple of 4096; fixed when the file is created).
    pub journal_capacity: u64,
    /// Disconnect/CoA retransmission and rounds.
    pub enforcement: EnforcementConfig,
    /// M-Pesa (None: off). See [`crate::payments::config`].
    pub mpesa: Option<MpesaSettings>,
    /// Time between two sweeps closing stale sessions.
    pub stale_sweep_interval: Duration,
    /// Interim interval (seconds) assumed for a session whose router sent none.
    pub default_interim_interval: u32,
    /// The voucher key file shared with rlm_jasiyo (created at `serve` if missing).
    pub voucher_key_file: PathBuf,
    /// The ISP's name, printed on vouchers.
    pub isp_name: String,
    /// Where phones on a hotspot (and Safaricom) reach this daemon, no trailing slash
    /// (`JASIYO_PUBLIC_URL`); the hotspot login page and the RouterOS script need it.
    pub public_url: Option<String>,
    /// The portal API's rate limits.
    pub portal: PortalLimits,
}

impl Settings {
    /// Reads the file (if any), then applies the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        Self::load_with(file, |k| std::env::var(k).ok())
    }

    /// As [`Settings::load`], with the environment given as a function (for tests).
    pub fn load_with(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let f: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let database_url = env("DATABASE_URL")
            .or(f.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        let listen = match env("JASIYO_LISTEN") {
            Some(v) => v
                .parse()
                .with_context(|| format!("JASIYO_LISTEN {v:?} is not host:port"))?,
            None => f
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8088))),
        };
        let snapshot_dir = env("JASIYO_SNAPSHOT_DIR")
            .map(PathBuf::from)
            .or(f.snapshot_dir)
            .unwrap_or_else(|| PathBuf::from("/var/lib/jasiyo/snapshot"));
        let snapshot_group = env("JASIYO_SNAPSHOT_GROUP")
            .or(f.snapshot_group)
            .unwrap_or_else(|| "freerad".to_owned());
        let snapshot_group = (!snapshot_group.is_empty()).then_some(snapshot_group);
        let log = env("JASIYO_LOG")
            .or(f.log)
            .unwrap_or_else(|| "info".to_owned());
        let log_format = match env("JASIYO_LOG_FORMAT") {
            Some(v) => v.parse()?,
            None => f.log_format.unwrap_or(LogFormat::Text),
        };
        let port = |key: &str, file: Option<u16>, default: u16| -> anyhow::Result<u16> {
            match env(key) {
                Some(v) => v
                    .parse()
                    .with_context(|| format!("{key} {v:?} is not a port")),
                None => Ok(file.unwrap_or(default)),
            }
        };
        let radius = RadiusSettings {
            public_address: env("JASIYO_RADIUS_PUBLIC_ADDRESS")
                .or(f.radius_public_address)
                .unwrap_or_else(|| "127.0.0.1".to_owned()),
            auth_port: port("JASIYO_RADIUS_AUTH_PORT", f.radius_auth_port, 1812)?,
            acct_port: port("JASIYO_RADIUS_ACCT_PORT", f.radius_acct_port, 1813)?,
        };
        let journal_path = env("JASIYO_JOURNAL_PATH")
            .map(PathBuf::from)
            .or(f.journal_path)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_JOURNAL_PATH));
        let journal_capacity = match env("JASIYO_JOURNAL_CAPACITY") {
            Some(v) => {
                parse_byte_size(&v).with_context(|| format!("JASIYO_JOURNAL_CAPACITY {v:?}"))?
            }
            None => f
                .journal_capacity
                .map(|c| c.bytes("journal_capacity"))
                .transpose()?
                .unwrap_or(DEFAULT_JOURNAL_CAPACITY),
        };
        let stale_sweep_interval = Duration::from_secs(u64::from(positive_count(
            &env,
            "JASIYO_STALE_SWEEP_INTERVAL",
            f.stale_sweep_interval,
            DEFAULT_STALE_SWEEP_SECS,
            " second",
        )?));
        let default_interim_interval = positive_count(
            &env,
            "JASIYO_DEFAULT_INTERIM_INTERVAL",
            f.default_interim_interval,
            DEFAULT_INTERIM_INTERVAL_SECS,
            " second",
        )?;
        if journal_capacity % 4096 != 0 || journal_capacity < 4096 {
            bail!("journal capacity {journal_capacity} must be a positive multiple of 4096 bytes");
        }
        let defaults = EnforcementConfig::default();
        let enforcement = EnforcementConfig {
            retry: RetryPolicy {
                initial_timeout: positive_seconds(
                    &env,
                    "JASIYO_COA_TIMEOUT",
                    f.coa_timeout,
                    defaults.retry.initial_timeout,
                )?,
                max_timeout: positive_seconds(
                    &env,
                    "JASIYO_COA_MAX_TIMEOUT",
                    f.coa_max_timeout,
                    defaults.retry.max_timeout,
                )?,
                max_transmissions: positive_count(
                    &env,
                    "JASIYO_COA_TRANSMISSIONS",
                    f.coa_transmissions,
                    defaults.retry.max_transmissions,
                    "",
                )?,
                max_duration: positive_seconds(
                    &env,
                    "JASIYO_COA_MAX_DURATION",
                    f.coa_max_duration,
                    defaults.retry.max_duration,
                )?,
            },
            rounds: positive_count(
                &env,
                "JASIYO_ENFORCEMENT_ROUNDS",
                f.enforcement_rounds,
                defaults.rounds,
                "",
            )?,
            round_backoff: positive_seconds(
                &env,
                "JASIYO_ENFORCEMENT_ROUND_BACKOFF",
                f.enforcement_round_backoff,
                defaults.round_backoff,
            )?,
        };
        let mpesa = MpesaSettings::load(f.mpesa, &env)?;
        let voucher_key_file = env("JASIYO_VOUCHER_KEY_FILE")
            .map(PathBuf::from)
            .or(f.voucher_key_file)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_VOUCHER_KEY_FILE));
        if voucher_key_file.as_os_str().is_empty() {
            bail!("JASIYO_VOUCHER_KEY_FILE must not be empty");
        }
        let isp_name = env("JASIYO_ISP_NAME")
            .or(f.isp_name)
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| DEFAULT_ISP_NAME.to_owned());
        if isp_name.is_empty() || isp_name.chars().count() > 100 {
            bail!("JASIYO_ISP_NAME must be 1..100 characters");
        }
        let public_url = match env("JASIYO_PUBLIC_URL")
            .or(f.public_url)
            .filter(|u| !u.is_empty())
        {
            Some(url) => Some(public_url(&url)?),
            None => mpesa.as_ref().map(|m| m.public_url.clone()),
        };
        let portal_defaults = PortalLimits::default();
        let portal = PortalLimits {
            purchases_per_ip_per_minute: positive_count(
                &env,
                "JASIYO_PORTAL_PURCHASES_PER_IP_PER_MINUTE",
                f.portal_purchases_per_ip_per_minute,
                portal_defaults.purchases_per_ip_per_minute,
                "",
            )?,
            purchases_per_phone_per_hour: positive_count(
                &env,
                "JASIYO_PORTAL_PURCHASES_PER_PHONE_PER_HOUR",
                f.portal_purchases_per_phone_per_hour,
                portal_defaults.purchases_per_phone_per_hour,
                "",
            )?,
            polls_per_ip_per_minute: positive_count(
                &env,
                "JASIYO_PORTAL_POLLS_PER_IP_PER_MINUTE",
                f.portal_polls_per_ip_per_minute,
                portal_defaults.polls_per_ip_per_minute,
                "",
            )?,
        };
        let settings = Self {
            database_url: SecretString::from(database_url),
            listen,
            snapshot_dir,
            snapshot_group,
            log,
            log_format,
            radius,
            journal_path,
            journal_capacity,
            enforcement,
            mpesa,
            stale_sweep_interval,
            default_interim_interval,
            voucher_key_file,
            isp_name,
            public_url,
            portal,
        };
        settings.connect_options()?;
        Ok(settings)
    }

    /// Postgres connection options from the URL.
    pub fn connect_options(&self) -> anyhow::Result<PgConnectOptions> {
        // The error text of a URL parse may echo the URL: do not include it.
        PgConnectOptions::from_str(self.database_url.expose_secret())
            .map_err(|_| anyhow::anyhow!("DATABASE_URL is not a valid postgres:// URL"))
    }

    /// The database URL with any password removed, for logs.
    pub fn database_display(&self) -> String {
        match self.connect_options() {
            Ok(o) => format!(
                "postgres://{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
            Err(_) => "<invalid>".to_owned(),
        }
    }
}

/// A whole number of at least 1 (`unit` names it in the error, e.g. `" second"`): the
/// environment's `key` first, then the file's value, then `default`.
fn positive_count(
    env: &impl Fn(&str) -> Option<String>,
    key: &str,
    file: Option<u32>,
    default: u32,
    unit: &str,
) -> anyhow::Result<u32> {
    let n = match env(key) {
        Some(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{key} {v:?} is not a whole number"))?,
        None => file.unwrap_or(default),
    };
    if n == 0 {
        bail!("{key} must be at least 1{unit}");
    }
    Ok(n)
}

/// `JASIYO_PUBLIC_URL` as both settings that read it keep it: no trailing slash, and http(s)
/// (https in production; http for tests and a local network).
pub(crate) fn public_url(url: &str) -> anyhow::Result<String> {
    let url = url.trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        bail!(
            "JASIYO_PUBLIC_URL {url:?} must start with https:// (http:// for tests or a local network)"
        );
    }
    Ok(url.to_owned())
}

/// A positive duration in seconds, decimals allowed (`0.2`): the environment's `key`
/// first, then the file's value, then `default`.
pub(crate) fn positive_seconds(
    env: &impl Fn(&str) -> Option<String>,
    key: &str,
    file: Option<f64>,
    default: Duration,
) -> anyhow::Result<Duration> {
    let value = match env(key) {
        Some(v) => v
            .trim()
            .parse::<f64>()
            .with_context(|| format!("{key} {v:?} is not a number of seconds"))?,
        None => match file {
            Some(f) => f,
            None => return Ok(default),
        },
    };
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{key} must be a positive number of seconds"))
}

/// Resolves a group name (or a numeric gid) to a gid through the system's group database
/// (NSS, so LDAP or sssd groups work as well as /etc/group).
pub fn resolve_group(name: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let group = nix::unistd::Group::from_name(name)
        .with_context(|| format!("looking up group {name:?}"))?
        .with_context(|| format!("group {name:?} does not exist"))?;
    Ok(group.gid.as_raw())
}

/// An environment made of `pairs`, for the settings tests.
#[cfg(test)]
pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let m: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| m.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::load_with(None, env_of(&[])).unwrap();
        assert_eq!(s.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert_eq!(s.listen.to_string(), "127.0.0.1:8088");
        assert_eq!(s.snapshot_dir, PathBuf::from("/var/lib/jasiyo/snapshot"));
        assert_eq!(s.snapshot_group.as_deref(), Some("freerad"));
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.radius.auth_port, 1812);
        assert_eq!(s.journal_path, PathBuf::from(DEFAULT_JOURNAL_PATH));
        assert_eq!(s.journal_capacity, 64 << 20);
        assert_eq!(s.stale_sweep_interval, Duration::from_secs(60));
        assert_eq!(s.default_interim_interval, 300);
        assert_eq!(s.voucher_key_file, PathBuf::from(DEFAULT_VOUCHER_KEY_FILE));
        assert_eq!(s.isp_name, DEFAULT_ISP_NAME);
    }

    #[test]
    fn voucher_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "voucher_key_file = \"/tmp/k\"\nisp_name = \"Mtaani Net\"\n",
        )
        .unwrap();
        let s = Settings::load_with(Some(&path), env_of(&[])).unwrap();
        assert_eq!(s.voucher_key_file, PathBuf::from("/tmp/k"));
        assert_eq!(s.isp_name, "Mtaani Net");
        let s =
            Settings::load_with(Some(&path), env_of(&[("JASIYO_VOUCHER_KEY_FILE", "/x")])).unwrap();
        assert_eq!(s.voucher_key_file, PathBuf::from("/x"));
        for bad in [("JASIYO_VOUCHER_KEY_FILE", ""), ("JASIYO_ISP_NAME", "  ")] {
            assert!(
                Settings::load_with(None, env_of(&[bad])).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stale_session_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "stale_sweep_interval = 30\ndefault_interim_interval = 120\n",
        )
        .unwrap();
        let s = Settings::load_with(Some(&path), env_of(&[])).unwrap();
        assert_eq!(s.stale_sweep_interval, Duration::from_secs(30));
        assert_eq!(s.default_interim_interval, 120);
        let s = Settings::load_with(
            Some(&path),
            env_of(&[
                ("JASIYO_STALE_SWEEP_INTERVAL", "1"),
                ("JASIYO_DEFAULT_INTERIM_INTERVAL", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(s.stale_sweep_interval, Duration::from_secs(1));
        assert_eq!(s.default_interim_interval, 2);
        for bad in ["0", "-1", "1m", ""] {
            let pairs = [("JASIYO_STALE_SWEEP_INTERVAL", bad)];
            assert!(
                Settings::load_with(None, env_of(&pairs)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn journal_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "journal_path = \"/tmp/j\"\njournal_capacity = \"8M\"\n",
        )
        .unwrap();
        let s = Settings::load_with(Some(&path), env_of(&[])).unwrap();
        assert_eq!(s.journal_path, PathBuf::from("/tmp/j"));
        assert_eq!(s.journal_capacity, 8 << 20);
        std::fs::write(&path, "journal_capacity = 1048576\n").unwrap();
        let s =
            Settings::load_with(Some(&path), env_of(&[("JASIYO_JOURNAL_CAPACITY", "1G")])).unwrap();
        assert_eq!(s.journal_capacity, 1 << 30);
        assert!(Settings::load_with(None, env_of(&[("JASIYO_JOURNAL_CAPACITY", "5000")])).is_err());
        assert!(Settings::load_with(None, env_of(&[("JASIYO_JOURNAL_CAPACITY", "4T")])).is_err());
    }

    #[test]
    fn enforcement_settings() {
        let s = Settings::load_with(None, env_of(&[])).unwrap();
        assert_eq!(s.enforcement, EnforcementConfig::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "coa_timeout = 0.5\ncoa_transmissions = 3\n").unwrap();
        let s = Settings::load_with(
            Some(&path),
            env_of(&[
                ("JASIYO_COA_MAX_DURATION", "4"),
                ("JASIYO_ENFORCEMENT_ROUND_BACKOFF", "0.25"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.enforcement.retry.initial_timeout,
            Duration::from_millis(500)
        );
        assert_eq!(s.enforcement.retry.max_transmissions, 3);
        assert_eq!(s.enforcement.retry.max_duration, Duration::from_secs(4));
        assert_eq!(s.enforcement.round_backoff, Duration::from_millis(250));
        for bad in [
            ("JASIYO_COA_TIMEOUT", "0"),
            ("JASIYO_COA_TIMEOUT", "-1"),
            ("JASIYO_COA_TRANSMISSIONS", "0"),
            ("JASIYO_ENFORCEMENT_ROUNDS", "x"),
        ] {
            assert!(
                Settings::load_with(None, env_of(&[bad])).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("65536").unwrap(), 65536);
        assert_eq!(parse_byte_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_byte_size("64 MiB").unwrap(), 64 << 20);
        assert_eq!(parse_byte_size("2g").unwrap(), 2 << 30);
        assert!(parse_byte_size("").is_err());
        assert!(parse_byte_size("M").is_err());
        assert!(parse_byte_size("99999999999999999999G").is_err());
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nsnapshot_dir = \"/tmp/x\"\nlog_format = \"json\"\nradius_auth_port = 11812\n",
        )
        .unwrap();
        let s = Settings::load_with(
            Some(&path),
            env_of(&[
                ("JASIYO_LISTEN", "127.0.0.1:9001"),
                ("JASIYO_SNAPSHOT_GROUP", ""),
                ("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:5555/db"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen.port(), 9001);
        assert_eq!(s.snapshot_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.snapshot_group, None);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.radius.auth_port, 11812);
        assert_eq!(s.database_display(), "postgres://u@127.0.0.1:5555/db");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        assert!(Settings::load_with(Some(&path), env_of(&[])).is_err());
    }

    #[test]
    fn groups_resolve_by_name_or_number() {
        assert_eq!(resolve_group("root").unwrap(), 0);
        assert_eq!(resolve_group("4242").unwrap(), 4242);
        assert!(resolve_group("no-such-group-jasiyo").is_err());
    }
}
