//! nginx in front of the app: redirecting every path to https, or the published server
//! block (`examples/django-app/deploy/nginx.conf`), with or without the Host pass-through.

use super::*;
use std::net::SocketAddr;

/// nginx in front of an upstream, serving a [`Site`].
pub struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

/// Which server block nginx serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// Every path redirected to https, the health path too (the broken configuration).
    RedirectEverything,
    /// `examples/django-app/deploy/nginx.conf` as published.
    Published,
    /// The published file without `proxy_set_header Host $http_host` (the upstream's name
    /// reaches the app as its Host).
    PublishedWithoutHost,
}

/// The published server block for `listen` and `upstream`: only those two lines change.
fn published(listen: SocketAddr, upstream: SocketAddr, keep_host: bool) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/django-app/deploy/nginx.conf");
    let text = std::fs::read_to_string(&file).unwrap();
    for line in ["listen 80 default_server;", "server 127.0.0.1:8000;"] {
        assert!(
            text.contains(line),
            "{} lost the line {line}",
            file.display()
        );
    }
    let text = text
        .replace("listen 80 default_server;", &format!("listen {listen};"))
        .replace("server 127.0.0.1:8000;", &format!("server {upstream};"));
    if keep_host {
        text
    } else {
        text.lines()
            .filter(|l| !l.contains("proxy_set_header Host $http_host;"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Nginx {
    pub fn start(ip: IpAddr, port: u16, upstream: (IpAddr, u16), site: Site) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (listen, upstream) = (SocketAddr::new(ip, port), SocketAddr::from(upstream));
        let server = match site {
            Site::RedirectEverything => format!(
                "server {{\n    listen {listen};\n    location / {{ return 301 https://$host$request_uri; }}\n  }}"
            ),
            Site::Published => published(listen, upstream, true),
            Site::PublishedWithoutHost => published(listen, upstream, false),
        };
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               {server}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: apt-get install nginx-light (.ci/run does)");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((ip, port)).is_err() {
            assert!(
                Instant::now() < until,
                "nginx did not listen on {ip}:{port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, _dir: dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
