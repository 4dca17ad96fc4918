//! Configuration: built-in defaults, then a TOML file, then `GUIDANG_*` environment variables.
//!
//! With nothing configured the service runs on SQLite and the local file system under `./data`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod code_pattern;
mod types;

pub use code_pattern::{Pattern as CodePattern, Values as CodeValues};
pub use types::{Action, CheckDepth, LogFormat, MonthDay, OptionalDay, Retention, TimeZone};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("configuration file {0} is not valid: {1}")]
    Parse(PathBuf, String),
    #[error("environment variable {0} is not valid: {1}")]
    Env(String, String),
    #[error("configuration is not valid: {0}")]
    Invalid(String),
}

/// Limits that stop hostile submissions before they cost memory or disk.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted by `POST /api/v1/cases` (413 above it).
    pub max_body_bytes: u64,
    /// Most entries a submission ZIP may hold.
    pub max_entries: usize,
    /// Largest sum of declared uncompressed sizes.
    pub max_total_bytes: u64,
    /// Largest uncompressed/compressed ratio of one entry (zip bombs), checked for entries over 1 MiB.
    pub max_ratio: u64,
    /// Largest `metadata.xml`.
    pub max_metadata_bytes: u64,
    /// An upload that sends no byte for this long is ended (408) and its spool removed.
    pub receive_idle_secs: u64,
    /// Uploads received at once; more are answered 503 with Retry-After. Receiving holds no
    /// processing slot (`ingest_concurrency`), only a spool file and a descriptor.
    pub max_receiving: usize,
    /// Largest JSON body of the routes that take lists (declarations, disposal lists, holds).
    pub max_json_bytes: usize,
    /// Most keys one completeness declaration may list.
    pub max_declared_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 << 30,
            max_entries: 10_000,
            max_total_bytes: 8 << 30,
            max_ratio: 200,
            max_metadata_bytes: 8 << 20,
            receive_idle_secs: 30,
            max_receiving: 256,
            max_json_bytes: 4 << 20,
            max_declared_keys: 50_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: SQLite file in the data directory.
    pub database_url: Option<String>,
    /// `file:///…` or `s3://bucket/prefix`; default: `objects/` in the data directory.
    pub object_store: Option<String>,
    pub fonds_code: String,
    /// Ed25519 signing key; default: `keys/signing.ed25519` in the data directory.
    pub signing_key: Option<PathBuf>,
    pub log_name: String,
    /// Ed25519 key that signs log checkpoints; default: `keys/log.ed25519` in the data directory.
    pub log_key: Option<PathBuf>,
    pub limits: Limits,
    /// Ingests processed at once; further requests wait (bounded memory and disk).
    pub ingest_concurrency: usize,
    /// Age after which an interrupted ingest's leftovers are removed at start.
    pub recovery_grace_secs: u64,
    /// Verify the ISO 7064 MOD 37,36 check character of e-licence identifiers.
    pub check_license_check_char: bool,
    /// Format id → `accept`, `warn`, `proprietary_format`, `archive_container` or `unknown_format`.
    pub format_policy: BTreeMap<String, Action>,
    pub db_max_connections: u32,
    /// How long a database write waits for a lock (SQLite busy timeout, PostgreSQL lock_timeout)
    /// before the request is answered 503 with Retry-After.
    pub db_lock_wait_ms: u64,
    /// How often a server removes the staging of processes that ended mid-work.
    pub staging_sweep_every_secs: u64,
    /// This process's staging directory, set when the archive is opened; not configurable.
    #[serde(skip)]
    pub staging_dir: Option<PathBuf>,
    /// Bytes of stored packages the background fixity audit re-reads per hour (0: off).
    pub fixity_bytes_per_hour: u64,
    /// How often the audit trail's head is entered in the transparency log (seconds).
    pub audit_head_every_secs: u64,
    /// A package is re-verified by the background audit at most once per this many seconds.
    pub fixity_min_interval_secs: u64,
    /// Virus scanning (ClamAV); unset: the GD-4-1 check reports `not_configured`.
    pub antivirus: Antivirus,
    /// `text` or `json`.
    pub log_format: LogFormat,
    pub retention: RetentionSettings,
    pub filing: FilingSettings,
    pub digitisation: DigitisationSettings,
    pub sm2: Sm2Settings,
    /// The archive authority transfers go to (named in the volumes' description and batch).
    pub transfer_receiver: String,
    /// Online delivery: the receiving archive's base URL (`http://host:port`), the transferor
    /// token it gave this unit, and its public keys (the file of its `guidang keys export`).
    pub transfer_receiver_url: Option<String>,
    pub transfer_receiver_token: Option<String>,
    pub transfer_receiver_keys: Option<PathBuf>,
    /// PEM file of the certificate authority that signed the receiver's HTTPS certificate (an
    /// archive authority's private CA); set, only it is trusted; unset, the system's roots.
    pub transfer_receiver_ca_file: Option<PathBuf>,
    /// Bytes per upload request of online delivery (default 8 MiB).
    pub transfer_chunk_bytes: u64,
    /// How often a server looks for deliveries to start or resume (seconds).
    pub transfer_send_every_secs: u64,
    /// Serve HTTPS with this certificate chain and private key (PEM); unset: plain HTTP (behind
    /// a TLS-terminating proxy, or inside a trusted network).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// At an archive authority: the pinned public keys of the units that deliver online.
    pub incoming_trusted_keys: Option<PathBuf>,
    /// Years the unit keeps a transferred case after the authority's receipt before it may be
    /// disposed of (at least five: DOMAIN of the transfer rules).
    pub transfer_keep_years: u32,
}

/// SM2 signatures (GB/T 32918) beside the Ed25519 ones, for archive authorities that check them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sm2Settings {
    /// Make (on first start) and publish an SM2 key.
    pub enabled: bool,
    /// Also sign every archival package with it (`signature-sm2.json`).
    pub sign_packages: bool,
    /// Where the PKCS#8 PEM key lives (default `{data_dir}/keys/sm2.pem`).
    pub key: Option<PathBuf>,
}

/// Quality control of digitised copies (DA/T 31-2017).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigitisationSettings {
    /// Lowest resolution accepted, pixels per inch (DA/T 31: at least 200; 300 where text is
    /// small or unclear).
    pub min_dpi: u32,
    /// Formats a scan batch may use: `tiff`, `jpeg`, `jp2`, `pdf`, `ofd`.
    pub formats: Vec<String>,
    /// How far (in per cent) a declared resolution, or a recorded one against the pixels over the
    /// declared paper size, may differ before it is a `declaration_mismatch`.
    pub tolerance_percent: u32,
}

impl Default for DigitisationSettings {
    fn default() -> Self {
        DigitisationSettings {
            min_dpi: 200,
            formats: ["tiff", "jpeg", "jp2", "pdf", "ofd"]
                .map(String::from)
                .to_vec(),
            tolerance_percent: 5,
        }
    }
}

/// Retention rules live in the database (`PUT /api/v1/retention/rules`); these bound them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// No case is kept fewer years than this, whatever a rule or a submitter says.
    pub floor_years: u32,
    /// Retention when no rule matches (`Y`, `D30` or `D10`).
    pub default: Retention,
    pub default_basis: String,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            floor_years: 10,
            default: Retention::D30,
            default_basis: "no rule matched: the configured default retention".into(),
        }
    }
}

/// The yearly filing (归档) of year Y before 30 June of Y+1, and its archival codes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilingSettings {
    /// IANA time zone in which a case's year and the deadline are reckoned.
    pub time_zone: TimeZone,
    /// Archival-code pattern; placeholders `{fonds}`, `{category}`, `{year}`, `{retention}`,
    /// `{org}`, `{task_type}` and `{item:04}` (the item number, continuous within its class).
    pub code_pattern: CodePattern,
    /// Category code (`ZY` professional records, `WS` documents, …).
    pub category: String,
    /// Organisation code per unified social credit code (`{org}`); default: the credit code itself.
    pub org_codes: BTreeMap<String, String>,
    /// Cases coded and recorded per transaction.
    pub batch_size: usize,
    /// `seal`: each package's tag manifest and signature are checked at filing; `full`: every
    /// payload byte is re-hashed as well.
    pub check: CheckDepth,
    /// Packages checked at once.
    pub check_concurrency: usize,
    /// From this day (`MM-DD`) of year Y+1 the state of year Y is reported daily.
    pub report_from: MonthDay,
    /// Warn this many days before 30 June (while year Y still has unfiled cases).
    pub warn_days: Vec<i64>,
    /// Run the filing of year Y on this day (`MM-DD`) of Y+1 if nobody has; empty: never by itself.
    pub auto_run_on: OptionalDay,
    /// Notices are also POSTed as JSON to this URL.
    pub webhook: Option<String>,
    /// How often the scheduler looks at the calendar (milliseconds).
    pub scheduler_every_ms: u64,
    /// How long a server's claim to run a filing lasts without renewal.
    pub lease_secs: u64,
    /// `POST /api/v1/filings` answers 201 with the batch if it finishes within this, else 202.
    pub respond_within_ms: u64,
}

impl Default for FilingSettings {
    fn default() -> Self {
        FilingSettings {
            time_zone: TimeZone(chrono_tz::Asia::Shanghai),
            code_pattern: CodePattern::parse(DEFAULT_CODE_PATTERN)
                .expect("the default archival-code pattern parses"),
            category: "ZY".into(),
            org_codes: BTreeMap::new(),
            batch_size: 1000,
            check: CheckDepth::Seal,
            check_concurrency: 8,
            report_from: MonthDay { month: 5, day: 1 },
            warn_days: vec![60, 30, 14, 7, 1],
            auto_run_on: OptionalDay(Some(MonthDay { month: 6, day: 20 })),
            webhook: None,
            scheduler_every_ms: 3_600_000,
            lease_secs: 300,
            respond_within_ms: 10_000,
        }
    }
}

const DEFAULT_CODE_PATTERN: &str = "{fonds}-{category}·{year}-{retention}-{org}-{item:04}";

impl FilingSettings {
    pub fn tz(&self) -> chrono_tz::Tz {
        self.time_zone.0
    }
}

/// Virus scanning (ClamAV); unset: the GD-4-1 check reports `not_configured`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Antivirus {
    /// Path of clamd's local socket.
    pub clamd_socket: Option<PathBuf>,
    /// The clamscan command (used when no socket is configured).
    pub clamscan: Option<String>,
    /// Signature database for clamscan (`-d`): a file or directory.
    pub database: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            object_store: None,
            fonds_code: "GD01".into(),
            signing_key: None,
            log_name: "guidang.local/log".into(),
            log_key: None,
            limits: Limits::default(),
            ingest_concurrency: std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(4),
            recovery_grace_secs: 3600,
            check_license_check_char: true,
            format_policy: BTreeMap::new(),
            db_max_connections: 16,
            db_lock_wait_ms: 30_000,
            staging_sweep_every_secs: 600,
            staging_dir: None,
            antivirus: Default::default(),
            fixity_bytes_per_hour: 10 << 30,
            audit_head_every_secs: 300,
            fixity_min_interval_secs: 7 * 24 * 3600,
            log_format: LogFormat::Text,
            retention: RetentionSettings::default(),
            filing: FilingSettings::default(),
            digitisation: DigitisationSettings::default(),
            sm2: Sm2Settings::default(),
            transfer_receiver: String::new(),
            transfer_receiver_url: None,
            transfer_receiver_token: None,
            transfer_receiver_keys: None,
            transfer_receiver_ca_file: None,
            transfer_chunk_bytes: 8 << 20,
            transfer_send_every_secs: 10,
            tls_cert_file: None,
            tls_key_file: None,
            incoming_trusted_keys: None,
            transfer_keep_years: 5,
        }
    }
}

impl Settings {
    /// Defaults, then the TOML file (explicit path, or `./guidang.toml` if present), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut s = match file {
            Some(p) => Self::from_file(p)?,
            None if Path::new("guidang.toml").exists() => {
                Self::from_file(Path::new("guidang.toml"))?
            }
            None => Settings::default(),
        };
        s.apply_env(|k| std::env::var(k).ok())?;
        s.validate()?;
        Ok(s)
    }

    fn from_file(p: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read(p.into(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(p.into(), e.to_string()))
    }

    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(k: &str, v: String) -> Result<T, ConfigError> {
            v.trim()
                .parse()
                .map_err(|_| ConfigError::Env(k.into(), format!("{v:?} is not a number")))
        }
        fn typed<T: TryFrom<String, Error = String>>(k: &str, v: String) -> Result<T, ConfigError> {
            T::try_from(v).map_err(|e| ConfigError::Env(k.into(), e))
        }
        fn choice<T: serde::de::DeserializeOwned>(k: &str, v: String) -> Result<T, ConfigError> {
            T::deserialize(serde::de::value::StringDeserializer::<
                serde::de::value::Error,
            >::new(v))
            .map_err(|e| ConfigError::Env(k.into(), e.to_string()))
        }
        if let Some(v) = get("GUIDANG_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("GUIDANG_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("GUIDANG_OBJECT_STORE") {
            self.object_store = Some(v);
        }
        if let Some(v) = get("GUIDANG_FONDS_CODE") {
            self.fonds_code = v;
        }
        if let Some(v) = get("GUIDANG_SIGNING_KEY") {
            self.signing_key = Some(v.into());
        }
        if let Some(v) = get("GUIDANG_CLAMD_SOCKET") {
            self.antivirus.clamd_socket = Some(v.into());
        }
        if let Some(v) = get("GUIDANG_CLAMSCAN") {
            self.antivirus.clamscan = Some(v);
        }
        if let Some(v) = get("GUIDANG_CLAMAV_DATABASE") {
            self.antivirus.database = Some(v.into());
        }
        if let Some(v) = get("GUIDANG_LOG_KEY") {
            self.log_key = Some(v.into());
        }
        if let Some(v) = get("GUIDANG_LOG_NAME") {
            self.log_name = v;
        }
        let k = "GUIDANG_LOG_FORMAT";
        if let Some(v) = get(k) {
            self.log_format = choice(k, v)?;
        }
        let k = "GUIDANG_MAX_BODY_BYTES";
        if let Some(v) = get(k) {
            self.limits.max_body_bytes = num(k, v)?;
        }
        let k = "GUIDANG_MAX_ENTRIES";
        if let Some(v) = get(k) {
            self.limits.max_entries = num(k, v)?;
        }
        let k = "GUIDANG_MAX_TOTAL_BYTES";
        if let Some(v) = get(k) {
            self.limits.max_total_bytes = num(k, v)?;
        }
        let k = "GUIDANG_MAX_RATIO";
        if let Some(v) = get(k) {
            self.limits.max_ratio = num(k, v)?;
        }
        let k = "GUIDANG_RECEIVE_IDLE_SECS";
        if let Some(v) = get(k) {
            self.limits.receive_idle_secs = num(k, v)?;
        }
        let k = "GUIDANG_MAX_RECEIVING";
        if let Some(v) = get(k) {
            self.limits.max_receiving = num(k, v)?;
        }
        let k = "GUIDANG_INGEST_CONCURRENCY";
        if let Some(v) = get(k) {
            self.ingest_concurrency = num(k, v)?;
        }
        let k = "GUIDANG_RECOVERY_GRACE_SECS";
        if let Some(v) = get(k) {
            self.recovery_grace_secs = num(k, v)?;
        }
        let k = "GUIDANG_AUDIT_HEAD_EVERY_SECS";
        if let Some(v) = get(k) {
            self.audit_head_every_secs = num(k, v)?;
        }
        let k = "GUIDANG_FIXITY_BYTES_PER_HOUR";
        if let Some(v) = get(k) {
            self.fixity_bytes_per_hour = num(k, v)?;
        }
        let k = "GUIDANG_TIME_ZONE";
        if let Some(v) = get(k) {
            self.filing.time_zone = typed(k, v)?;
        }
        if let Some(v) = get("GUIDANG_FILING_WEBHOOK") {
            self.filing.webhook = Some(v);
        }
        let k = "GUIDANG_FILING_AUTO_RUN_ON";
        if let Some(v) = get(k) {
            self.filing.auto_run_on = typed(k, v)?;
        }
        let k = "GUIDANG_RETENTION_FLOOR_YEARS";
        if let Some(v) = get(k) {
            self.retention.floor_years = num(k, v)?;
        }
        let k = "GUIDANG_DB_MAX_CONNECTIONS";
        if let Some(v) = get(k) {
            self.db_max_connections = num(k, v)?;
        }
        let k = "GUIDANG_STAGING_SWEEP_EVERY_SECS";
        if let Some(v) = get(k) {
            self.staging_sweep_every_secs = num(k, v)?;
        }
        let k = "GUIDANG_DB_LOCK_WAIT_MS";
        if let Some(v) = get(k) {
            self.db_lock_wait_ms = num(k, v)?;
        }
        fn flag(k: &str, v: String) -> Result<bool, ConfigError> {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" | "" => Ok(false),
                _ => Err(ConfigError::Env(
                    k.into(),
                    format!("{v:?} is not true or false"),
                )),
            }
        }
        if let Some(v) = get("GUIDANG_TRANSFER_RECEIVER") {
            self.transfer_receiver = v;
        }
        if let Some(v) = get("GUIDANG_TRANSFER_RECEIVER_URL") {
            self.transfer_receiver_url = Some(v);
        }
        if let Some(v) = get("GUIDANG_TRANSFER_RECEIVER_TOKEN") {
            self.transfer_receiver_token = Some(v);
        }
        if let Some(v) = get("GUIDANG_TRANSFER_RECEIVER_KEYS") {
            self.transfer_receiver_keys = Some(PathBuf::from(v));
        }
        if let Some(v) = get("GUIDANG_TRANSFER_RECEIVER_CA_FILE") {
            self.transfer_receiver_ca_file = Some(PathBuf::from(v));
        }
        let k = "GUIDANG_TRANSFER_CHUNK_BYTES";
        if let Some(v) = get(k) {
            self.transfer_chunk_bytes = num(k, v)?;
        }
        let k = "GUIDANG_TRANSFER_SEND_EVERY_SECS";
        if let Some(v) = get(k) {
            self.transfer_send_every_secs = num(k, v)?;
        }
        if let Some(v) = get("GUIDANG_TLS_CERT_FILE") {
            self.tls_cert_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("GUIDANG_TLS_KEY_FILE") {
            self.tls_key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("GUIDANG_INCOMING_TRUSTED_KEYS") {
            self.incoming_trusted_keys = Some(PathBuf::from(v));
        }
        let k = "GUIDANG_SM2_ENABLED";
        if let Some(v) = get(k) {
            self.sm2.enabled = flag(k, v)?;
        }
        let k = "GUIDANG_SM2_SIGN_PACKAGES";
        if let Some(v) = get(k) {
            self.sm2.sign_packages = flag(k, v)?;
        }
        let k = "GUIDANG_DIGITISATION_MIN_DPI";
        if let Some(v) = get(k) {
            self.digitisation.min_dpi = num(k, v)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.ingest_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "ingest_concurrency must be at least 1".into(),
            ));
        }
        if self.limits.max_receiving == 0 || self.limits.receive_idle_secs == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_receiving and limits.receive_idle_secs must be at least 1".into(),
            ));
        }
        for f in &self.digitisation.formats {
            if !["tiff", "jpeg", "jp2", "pdf", "ofd"].contains(&f.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "digitisation.formats: {f:?} is not one of tiff, jpeg, jp2, pdf, ofd"
                )));
            }
        }
        if self.transfer_keep_years < 5 {
            return Err(ConfigError::Invalid(
                "transfer_keep_years must be at least 5 (the sender keeps transferred records five years)".into(),
            ));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert_file and tls_key_file are set together (HTTPS needs both)".into(),
            ));
        }
        if !(1 << 10..=1 << 30).contains(&self.transfer_chunk_bytes) {
            return Err(ConfigError::Invalid(
                "transfer_chunk_bytes must be between 1 KiB and 1 GiB".into(),
            ));
        }
        if self.digitisation.min_dpi == 0 {
            return Err(ConfigError::Invalid(
                "digitisation.min_dpi must be at least 1".into(),
            ));
        }
        if self.fonds_code.trim().is_empty() {
            return Err(ConfigError::Invalid("fonds_code must not be empty".into()));
        }
        if self.filing.batch_size == 0 || self.filing.check_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "filing.batch_size and filing.check_concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("guidang.db").display()
            )
        })
    }

    pub fn object_store_url(&self) -> String {
        self.object_store.clone().unwrap_or_else(|| {
            let abs = absolute(&self.data_dir.join("objects"));
            format!("file://{}", abs.display())
        })
    }

    pub fn log_key_path(&self) -> PathBuf {
        self.log_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("log.ed25519"))
    }

    /// The SM2 key, where SM2 is enabled (signing packages with it implies it).
    pub fn sm2_key_path(&self) -> Option<PathBuf> {
        (self.sm2.enabled || self.sm2.sign_packages).then(|| {
            self.sm2
                .key
                .clone()
                .unwrap_or_else(|| self.data_dir.join("keys").join("sm2.pem"))
        })
    }

    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("signing.ed25519"))
    }

    /// Scratch space for submissions being received and packages being built: this process's
    /// own directory once the archive is open (see `staging`), else the staging root.
    pub fn tmp_dir(&self) -> PathBuf {
        self.staging_dir
            .clone()
            .unwrap_or_else(|| self.staging_root())
    }

    /// Where every process's staging directory lives.
    pub fn staging_root(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }
}

pub fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    // `./data` reads better in messages as `/srv/x/data`; `..` is kept (symlinks make it real).
    joined
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_value_stops_the_start_with_its_name() {
        let env = |k: &str, v: &str| {
            let (k, v) = (k.to_string(), v.to_string());
            move |q: &str| (q == k).then(|| v.clone())
        };
        let mut s = Settings::default();
        let e = s
            .apply_env(env("GUIDANG_TIME_ZONE", "Mars/Olympus"))
            .unwrap_err();
        assert!(e.to_string().contains("GUIDANG_TIME_ZONE"), "{e}");
        let e = s.apply_env(env("GUIDANG_LOG_FORMAT", "xml")).unwrap_err();
        assert!(e.to_string().contains("GUIDANG_LOG_FORMAT"), "{e}");
        s.apply_env(env("GUIDANG_FILING_AUTO_RUN_ON", "")).unwrap();
        assert_eq!(s.filing.auto_run_on, OptionalDay(None));
        s.apply_env(env("GUIDANG_TIME_ZONE", "Asia/Urumqi"))
            .unwrap();
        assert_eq!(s.filing.time_zone.to_string(), "Asia/Urumqi");

        let bad: Result<Settings, _> =
            toml::from_str("[filing]\ncode_pattern = \"{fonds}-{year}\"\n");
        assert!(bad.unwrap_err().to_string().contains("item"));
        let bad: Result<Settings, _> = toml::from_str("[filing]\nreport_from = \"13-40\"\n");
        assert!(bad.is_err());
        let ok: Settings =
            toml::from_str("[filing]\ncheck = \"full\"\ntime_zone = \"Asia/Shanghai\"\n").unwrap();
        assert_eq!(ok.filing.check, CheckDepth::Full);
    }
}
