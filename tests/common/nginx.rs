//! nginx in front of the app, redirecting to https (the redirect scenarios).

use super::*;

/// nginx in front of an upstream, redirecting every path to https, or every path but
/// `/health` (the fixed configuration).
pub struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(ip: IpAddr, port: u16, upstream: (IpAddr, u16), exempt_health: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let health = if exempt_health {
            format!(
                "location = /health {{ proxy_pass http://{}:{}; proxy_set_header Host $http_host; }}",
                upstream.0, upstream.1
            )
        } else {
            String::new()
        };
        let conf = format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen {ip}:{port};\n    {health}\n\
                 location / {{ return 301 https://$host$request_uri; }}\n  }}\n}}\n"
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
