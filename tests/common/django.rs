//! The example Django app under gunicorn, bound to an instance's private IP, in its
//! healthy and broken variants.

use super::*;

/// How the example app's database is prepared before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// `migrate`: everything applied.
    Applied,
    /// Everything but the release's newest migration (`catalog.0002_seed_products`).
    NewestUnapplied,
    /// Nothing applied.
    None,
}

/// How the example app is started.
#[derive(Debug, Clone)]
pub struct AppSetup {
    /// `DJANGO_ALLOWED_HOSTS`; `None` puts the instance's IP in it.
    pub allowed_hosts: Option<String>,
    pub migrations: Migrations,
    /// False leaves `DJANGO_SECRET_KEY` unset: settings raise and gunicorn never serves.
    pub secret_key: bool,
    /// `DJANGO_SECURE_SSL_REDIRECT=1`: http redirects to https, except the health paths.
    pub ssl_redirect: bool,
    /// Serve HTTPS (gunicorn's TLS) with a self-signed certificate made for the test.
    pub tls: bool,
    /// False leaves `SHOP_CURRENCY` unset: the home page fails with 500, `/ping` still 200.
    pub currency: bool,
    /// A database path instead of the app's own (a missing directory: the database is
    /// unreachable).
    pub db_path: Option<PathBuf>,
    /// The instance has a metadata service (the IMDS emulator, tokens required) and the
    /// release reads its private IP from it, as given; `DJANGO_ALLOWED_HOSTS` then lacks
    /// the IP unless `allowed_hosts` lists it.
    pub imds: Option<ImdsClient>,
    /// The instance or task boots this long before its app starts (a slow start).
    pub boot_delay: Option<Duration>,
}

/// How a release asks the metadata service for its private IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImdsClient {
    /// The example app's IMDSv2 token flow (`ALLOWED_HOSTS_FROM_IMDS=1`).
    TokenFlow,
    /// A release that sends a plain IMDSv1 GET and swallows the 401
    /// (`tests/fixtures/imdsv1_settings.py`).
    PlainGet,
}

impl AppSetup {
    /// The release's settings with `DJANGO_ALLOWED_HOSTS` set to `hosts` (without the
    /// instance's private IP, the broken variant most scenarios need).
    pub fn allowing(hosts: &str) -> Self {
        Self {
            allowed_hosts: Some(hosts.into()),
            ..Self::default()
        }
    }
}

impl Default for AppSetup {
    fn default() -> Self {
        Self {
            allowed_hosts: None,
            migrations: Migrations::Applied,
            secret_key: true,
            ssl_redirect: false,
            tls: false,
            currency: true,
            db_path: None,
            imds: None,
            boot_delay: None,
        }
    }
}

/// Writes a self-signed certificate and its key (argv[1], argv[2]) with `cryptography`,
/// which moto already installs.
const SELF_SIGNED: &str = r#"
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.com")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
open(sys.argv[1], "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(sys.argv[2], "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
"#;

/// The example Django app under gunicorn, bound to the instance's private IP.
pub struct DjangoApp {
    child: Child,
    dir: tempfile::TempDir,
    ip: IpAddr,
    pub log: PathBuf,
    /// The instance's metadata service, when it has one.
    imds: Option<Child>,
}

/// Runs the example app's migrations on the SQLite database at `path` (a database that
/// several apps share, as instances share a database server).
pub fn migrate_database(path: &Path) {
    let status = Command::new(python())
        .current_dir(repo().join("examples/django-app"))
        .env("DJANGO_SECRET_KEY", "launch-gate-tests-only")
        .env("DJANGO_DB_PATH", path)
        .env("DJANGO_ALLOWED_HOSTS", "localhost")
        .args(["manage.py", "migrate", "-v", "0"])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "manage.py migrate on {} failed",
        path.display()
    );
}

/// Starts the metadata service emulator (`emulator/imds.py`, tokens required) for an
/// instance whose private IP is `ip`; its endpoint.
fn start_imds(ip: IpAddr) -> (Child, String) {
    let port = free_port();
    let child = Command::new(python())
        .arg(repo().join("emulator/imds.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--local-ipv4", &ip.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "the IMDS emulator did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, format!("http://127.0.0.1:{port}"))
}

impl DjangoApp {
    fn app_dir() -> PathBuf {
        repo().join("examples/django-app")
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.current_dir(Self::app_dir())
            .env("DJANGO_SECRET_KEY", "launch-gate-tests-only")
            .env("DJANGO_DB_PATH", self.dir.path().join("db.sqlite3"))
            .env("DJANGO_ALLOWED_HOSTS", self.ip.to_string())
            .env("SHOP_CURRENCY", "EUR");
        c
    }

    /// Runs `manage.py migrate [args]` against this app's database.
    pub fn migrate(&self, args: &[&str]) {
        let status = self
            .command(&python())
            .args(["manage.py", "migrate", "-v", "0"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "manage.py migrate {args:?} failed");
    }

    /// Starts the app on `ip:port`. When it is expected to start (a secret key is set),
    /// waits until it accepts connections.
    pub fn start(ip: IpAddr, port: u16, setup: AppSetup) -> Self {
        if let Some(delay) = setup.boot_delay {
            std::thread::sleep(delay);
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("gunicorn.log");
        let placeholder = Command::new("true").spawn().unwrap();
        let mut app = Self {
            child: placeholder,
            dir,
            ip,
            log: log.clone(),
            imds: None,
        };
        match setup.migrations {
            Migrations::Applied => app.migrate(&[]),
            Migrations::NewestUnapplied => {
                app.migrate(&[]);
                app.migrate(&["catalog", "0001"]);
            }
            Migrations::None => {}
        }
        let mut cmd = app.command(&python());
        cmd.args(["-m", "gunicorn", "shop.wsgi", "--workers", "1", "--bind"])
            .arg(std::net::SocketAddr::new(ip, port).to_string())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let listed = match (&setup.allowed_hosts, setup.imds) {
            (Some(hosts), _) => hosts.clone(),
            // The release learns its IP from the metadata service, or fails to.
            (None, Some(_)) => "shop.example.com".to_owned(),
            // Django matches an IPv6 Host by its bracketed form.
            (None, None) => match ip {
                IpAddr::V4(_) => ip.to_string(),
                IpAddr::V6(_) => format!("[{ip}]"),
            },
        };
        cmd.env("DJANGO_ALLOWED_HOSTS", listed);
        if let Some(client) = setup.imds {
            let (child, endpoint) = start_imds(ip);
            app.imds = Some(child);
            cmd.env("IMDS_ENDPOINT", endpoint);
            match client {
                ImdsClient::TokenFlow => {
                    cmd.env("ALLOWED_HOSTS_FROM_IMDS", "1");
                }
                ImdsClient::PlainGet => {
                    cmd.env("DJANGO_SETTINGS_MODULE", "imdsv1_settings")
                        .env("PYTHONPATH", repo().join("tests/fixtures"));
                }
            }
        }
        if !setup.secret_key {
            cmd.env_remove("DJANGO_SECRET_KEY");
        }
        if setup.ssl_redirect {
            cmd.env("DJANGO_SECURE_SSL_REDIRECT", "1");
        }
        if !setup.currency {
            cmd.env_remove("SHOP_CURRENCY");
        }
        if let Some(db) = &setup.db_path {
            cmd.env("DJANGO_DB_PATH", db);
        }
        if setup.tls {
            let (cert, key) = (
                app.dir.path().join("cert.pem"),
                app.dir.path().join("key.pem"),
            );
            let status = Command::new(python())
                .arg("-c")
                .arg(SELF_SIGNED)
                .arg(&cert)
                .arg(&key)
                .status()
                .unwrap();
            assert!(status.success(), "could not make a self-signed certificate");
            cmd.arg("--certfile").arg(cert).arg("--keyfile").arg(key);
        }
        app.child = cmd.spawn().expect("start gunicorn");
        if setup.secret_key {
            let until = Instant::now() + Duration::from_secs(20);
            while TcpStream::connect((ip, port)).is_err() {
                assert!(
                    Instant::now() < until,
                    "gunicorn did not listen on {ip}:{port}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        app
    }

    /// Starts the app with no migration applied, and applies them after `delay`, as a
    /// slow start-up script would; the handle gives the app back once migrated.
    pub fn start_migrating_after(
        ip: IpAddr,
        port: u16,
        delay: Duration,
    ) -> tokio::task::JoinHandle<DjangoApp> {
        let app = Self::start(
            ip,
            port,
            AppSetup {
                migrations: Migrations::None,
                ..AppSetup::default()
            },
        );
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(delay);
            app.migrate(&[]);
            app
        })
    }

    /// Whether gunicorn's master process has exited, and its log.
    pub fn exited(&mut self) -> Option<String> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|_| std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for DjangoApp {
    fn drop(&mut self) {
        stop(&mut self.child);
        if let Some(imds) = self.imds.as_mut() {
            stop(imds);
        }
    }
}
