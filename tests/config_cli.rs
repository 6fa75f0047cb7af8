//! The binary's configuration handling (contract section 1): `--check-config`,
//! exit code 2 naming the key, env overrides parsed by type.

mod common;

use std::process::{Command, Output};

use common::{stderr, temp_dir};

fn hub(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_realtime-hub"));
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run realtime-hub")
}

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = temp_dir("cfg").join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn embedded_default_and_the_shipped_file_are_valid() {
    let o = hub(&["--check-config"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    let o = hub(&["--check-config", "--config", shipped], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn bad_configs_exit_2_naming_the_key() {
    let cases = [
        ("syntax.toml", "[server\nbind = 1", "syntax"),
        (
            "type.toml",
            "[server]\nworkers = \"four\"\n",
            "server.workers",
        ),
        ("unknown.toml", "[server]\nbindd = \"x\"\n", "bindd"),
        (
            "room.toml",
            "[[rooms.declare]]\nname = \"Hot Spots\"\n",
            "rooms.declare[0].name",
        ),
        (
            "tls.toml",
            "[server]\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n",
            "server.tls_cert",
        ),
        (
            "jwt.toml",
            "[auth]\njwt_secret = \"a-secret-of-at-least-32-bytes-ok\"\njwt_public_key_file = \"/etc/hostname\"\n",
            "auth.jwt_public_key_file",
        ),
        (
            "short-secret.toml",
            "[auth]\njwt_secret = \"s3cret\"\n",
            "auth.jwt_secret",
        ),
        (
            "timeout.toml",
            "[websocket]\nheartbeat_interval_s = 10\nclient_timeout_s = 5\n",
            "websocket.client_timeout_s",
        ),
    ];
    for (name, text, needle) in cases {
        let path = write_config(name, text);
        let o = hub(
            &["--check-config", "--config", path.to_str().expect("path")],
            &[],
        );
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(needle),
            "{name}: {:?} lacks {needle}",
            stderr(&o)
        );
    }
    let o = hub(
        &["--check-config", "--config", "/nonexistent/hub.toml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/hub.toml"));
}

#[test]
fn env_overrides_are_typed_and_checked() {
    let o = hub(
        &["--check-config"],
        &[("HUB_WEBSOCKET__OUTBOUND_QUEUE", "lots")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("websocket.outbound_queue"),
        "{}",
        stderr(&o)
    );
    let o = hub(&["--check-config"], &[("HUB_SERVER__NO_SUCH_KEY", "1")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("server.no_such_key"), "{}", stderr(&o));
    let o = hub(
        &["--check-config"],
        &[
            (
                "HUB_SERVER__ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
            ("HUB_ROOMS__DECLARE", "alpha,beta"),
            ("HUB_ROOMS__ALLOW_DYNAMIC", "true"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = hub(&["--check-config"], &[("HUB_ROOMS__DECLARE", "ok,Not OK")]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_reads_well_and_bad_flags_exit_2() {
    let o = hub(&["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("--config") && out.contains("--check-config"),
        "{out}"
    );
    let o = hub(&["--no-such-flag"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_short_hs256_secret_stops_the_server_from_starting() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_realtime-hub"))
        .env("HUB_SERVER__BIND", "127.0.0.1:0")
        .env("HUB_AUTH__JWT_SECRET", "only-20-bytes-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the hub started with a 20-byte HS256 secret");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let o = child.wait_with_output().expect("output");
    assert_eq!(status.code(), Some(2));
    assert!(stderr(&o).contains("auth.jwt_secret"), "{}", stderr(&o));
}
