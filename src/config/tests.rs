use super::*;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

#[test]
fn embedded_default_matches_code_defaults() {
    let from_file = Config::from_toml("embedded", EMBEDDED_DEFAULT, no_env()).expect("valid");
    assert_eq!(from_file, Config::default());
}

#[test]
fn missing_keys_keep_defaults_and_declare_defaults_to_three_feeds() {
    let c = Config::from_toml("t", "[server]\nbind = \"127.0.0.1:0\"\n", no_env()).expect("valid");
    assert_eq!(c.server.bind, "127.0.0.1:0");
    assert_eq!(c.websocket, WebSocketConfig::default());
    let names: Vec<_> = c.rooms.declare.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["hotspots", "alerts", "recommendations"]);
}

fn key_of(err: ConfigError) -> String {
    match err {
        ConfigError::Key { key, .. } => key,
        other => panic!("expected a key error, got {other}"),
    }
}

#[test]
fn errors_name_the_key() {
    let err = Config::from_toml("t", "[server]\nworkers = \"x\"\n", no_env()).unwrap_err();
    assert_eq!(key_of(err), "server.workers");
    let err = Config::from_toml("t", "[server]\nbindx = 1\n", no_env()).unwrap_err();
    assert!(err.to_string().contains("bindx"), "{err}");
    let err =
        Config::from_toml("t", "[[rooms.declare]]\nname = \"Bad Name\"\n", no_env()).unwrap_err();
    assert_eq!(key_of(err), "rooms.declare[0].name");
    let err = Config::from_toml(
        "t",
        "[auth]\njwt_secret = \"a-secret-of-at-least-32-bytes-ok\"\njwt_public_key_file = \"/etc/hostname\"\n",
        no_env(),
    )
    .unwrap_err();
    assert_eq!(key_of(err), "auth.jwt_public_key_file");
    let err = Config::from_toml(
        "t",
        "[server]\ntls_cert = \"/nope.pem\"\ntls_key = \"/nope.key\"\n",
        no_env(),
    )
    .unwrap_err();
    assert_eq!(key_of(err), "server.tls_cert");
    for bad in ["max_fragments = 0", "socket_send_buffer = 100"] {
        let err = Config::from_toml("t", &format!("[websocket]\n{bad}\n"), no_env()).unwrap_err();
        let key = format!("websocket.{}", bad.split(' ').next().unwrap_or(""));
        assert_eq!(key_of(err), key);
    }
    let err = Config::from_toml("t", "[rooms]\nhistory = 2000000\n", no_env()).unwrap_err();
    assert_eq!(key_of(err), "rooms.history");
    let capped = Config::from_toml("t", "[rooms]\nhistory = 5\nsnapshot = 6\n", no_env())
        .expect("a snapshot over history is capped, not refused");
    assert_eq!(capped.room_settings("alerts").map(|s| s.snapshot), Some(5));
    assert!(matches!(
        Config::from_toml("t", "[server\n", no_env()),
        Err(ConfigError::Syntax { .. })
    ));
}

#[test]
fn hardening_keys_are_checked() {
    let check = |text: &str| Config::from_toml("t", text, no_env());
    let short = check("[auth]\njwt_secret = \"0123456789abcdef0123456789abcde\"\n");
    assert_eq!(key_of(short.unwrap_err()), "auth.jwt_secret");
    check("[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n")
        .expect("32 bytes are enough");
    for key in ["jwt_audience", "jwt_issuer"] {
        let err = check(&format!("[auth]\n{key} = \"x\"\n")).unwrap_err();
        assert_eq!(key_of(err), format!("auth.{key}"), "without a JWT method");
    }
    for bad in ["hub.example.com:8080", "http://hub.example.com", "", "a b"] {
        let err = check(&format!("[server]\npublic_hosts = [\"{bad}\"]\n")).unwrap_err();
        assert_eq!(key_of(err), "server.public_hosts", "{bad:?}");
    }
    let ok = check("[server]\npublic_hosts = [\"hub.internal\", \"[fd00::1]\"]\n").expect("valid");
    assert_eq!(ok.server.public_hosts.len(), 2);
    let err = check("[server]\nbody_timeout_s = 0\n").unwrap_err();
    assert_eq!(key_of(err), "server.body_timeout_s");
    assert!(
        Config::default().auth.public_reads,
        "the v1 contract: public reads"
    );
}

#[test]
fn cluster_keys_are_checked_only_when_redis_is_on() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // Off: the other keys may be anything.
    Config::from_toml("t", "", env(&[("HUB_CLUSTER__POOL_SIZE", "0")])).expect("off");
    let on = |extra: &[(&str, &str)]| {
        let mut vars = vec![("HUB_CLUSTER__REDIS_URL", "redis://127.0.0.1:6390/")];
        vars.extend_from_slice(extra);
        Config::from_toml("t", "", env(&vars))
    };
    let c = on(&[("HUB_CLUSTER__HEARTBEAT_MS", "250")]).expect("valid cluster");
    assert_eq!(c.cluster.heartbeat_ms, 250);
    for (var, key) in [
        ("HUB_CLUSTER__REDIS_URL", "cluster.redis_url"),
        ("HUB_CLUSTER__KEY_PREFIX", "cluster.key_prefix"),
        ("HUB_CLUSTER__NODE_ID", "cluster.node_id"),
        ("HUB_CLUSTER__POOL_SIZE", "cluster.pool_size"),
        ("HUB_CLUSTER__HEARTBEAT_MS", "cluster.heartbeat_ms"),
    ] {
        let bad = match var {
            "HUB_CLUSTER__REDIS_URL" => "http://x/",
            "HUB_CLUSTER__KEY_PREFIX" => "a b",
            "HUB_CLUSTER__NODE_ID" => "node 1",
            "HUB_CLUSTER__POOL_SIZE" => "0",
            _ => "1",
        };
        let err = if var == "HUB_CLUSTER__REDIS_URL" {
            Config::from_toml("t", "", env(&[(var, bad)])).unwrap_err()
        } else {
            on(&[(var, bad)]).unwrap_err()
        };
        assert_eq!(key_of(err), key, "{var}={bad}");
    }
}

#[test]
fn sentinel_keys_turn_cluster_mode_on_and_are_checked() {
    let check = |text: &str| Config::from_toml("t", text, no_env());
    let c = check(
        "[cluster]\nsentinels = [\"s1:26379\", \"[::1]:26380\"]\nsentinel_master = \"mymaster\"\n",
    )
    .expect("valid sentinel cluster");
    assert!(c.cluster.is_on());
    assert_eq!(c.cluster.replicas_to_wait(), 1, "default 1 with sentinels");
    let plain = check("[cluster]\nredis_url = \"redis://127.0.0.1:6390/\"\n").expect("valid");
    assert_eq!(plain.cluster.replicas_to_wait(), 0, "default 0 without");
    assert!(!Config::default().cluster.is_on());
    let zero = check(
        "[cluster]\nsentinels = [\"s1:26379\"]\nsentinel_master = \"m\"\nmin_replicas_acked = 0\n",
    )
    .expect("valid");
    assert_eq!(zero.cluster.replicas_to_wait(), 0);
    for (text, key) in [
        (
            "[cluster]\nredis_url = \"redis://h/\"\nsentinels = [\"s1:26379\"]\nsentinel_master = \"m\"\n",
            "cluster.sentinels",
        ),
        ("[cluster]\nsentinels = [\"s1:26379\"]\n", "cluster.sentinel_master"),
        (
            "[cluster]\nsentinels = [\"s1\"]\nsentinel_master = \"m\"\n",
            "cluster.sentinels[0]",
        ),
        ("[cluster]\nsentinel_master = \"m\"\n", "cluster.sentinel_master"),
        ("[cluster]\nsentinel_tls = true\n", "cluster.sentinel_tls"),
        (
            "[cluster]\nsentinels = [\"s1:1\"]\nsentinel_master = \"m\"\nmin_replicas_acked = -2\n",
            "cluster.min_replicas_acked",
        ),
        (
            "[cluster]\nredis_url = \"redis://h/\"\nmin_replicas_acked = 17\n",
            "cluster.min_replicas_acked",
        ),
    ] {
        assert_eq!(key_of(check(text).unwrap_err()), key, "{text}");
    }
    let both = check(
        "[cluster]\nredis_url = \"redis://h/\"\nsentinels = [\"s1:26379\"]\nsentinel_master = \"m\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        both.contains("redis_url") && both.contains("sentinels"),
        "{both}"
    );
    let env = vec![
        ("HUB_CLUSTER__SENTINELS".to_string(), "a:1, b:2".to_string()),
        ("HUB_CLUSTER__SENTINEL_MASTER".to_string(), "m".to_string()),
    ];
    let c = Config::from_toml("t", "", env).expect("from the environment");
    assert_eq!(c.cluster.sentinels, ["a:1", "b:2"]);
}

#[test]
fn room_settings_apply_overrides_and_dynamic_rule() {
    let c = Config::from_toml(
        "t",
        "[rooms]\nhistory = 50\n[[rooms.declare]]\nname = \"a\"\nhistory = 7\nsnapshot = 3\nclient_publish = true\n",
        no_env(),
    )
    .expect("valid");
    let a = c.room_settings("a").expect("declared");
    assert_eq!((a.history, a.snapshot, a.client_publish), (7, 3, true));
    assert_eq!((a.keyed, a.max_keys), (false, 10_000));
    assert!(
        c.room_settings("hotspots").is_none(),
        "declare replaces the defaults"
    );
    assert!(c.room_settings("b").is_none());
    let mut dynamic = c.clone();
    dynamic.rooms.allow_dynamic = true;
    assert_eq!(dynamic.room_settings("b").map(|s| s.history), Some(50));
    assert!(dynamic.room_settings("B!").is_none());
}

#[test]
fn presence_is_per_room_in_both_modes() {
    for cluster in ["", "[cluster]\nredis_url = \"redis://127.0.0.1:1\"\n"] {
        let c = Config::from_toml(
            "t",
            &format!("{cluster}[[rooms.declare]]\nname = \"ops\"\npresence = true\n[[rooms.declare]]\nname = \"p\"\n"),
            no_env(),
        )
        .expect("valid");
        assert!(c.room_settings("ops").is_some_and(|s| s.presence));
        assert!(c.room_settings("p").is_some_and(|s| !s.presence));
    }
}

#[test]
fn keyed_rooms_take_declared_overrides_and_defaults() {
    let c = Config::from_toml(
        "t",
        "[rooms]\nallow_dynamic = true\nmax_keys = 9\n[[rooms.declare]]\nname = \"k\"\nkeyed = true\nmax_keys = 2\n[[rooms.declare]]\nname = \"p\"\n",
        no_env(),
    )
    .expect("valid");
    let k = c.room_settings("k").expect("declared");
    assert_eq!((k.keyed, k.max_keys), (true, 2));
    let p = c.room_settings("p").expect("declared");
    assert_eq!((p.keyed, p.max_keys), (false, 9));
    let env = vec![("HUB_ROOMS__KEYED".to_string(), "true".to_string())];
    let c = Config::from_toml("t", "[rooms]\nallow_dynamic = true\n", env).expect("valid");
    assert!(c.room_settings("any").is_some_and(|s| s.keyed));
    for bad in [
        "[rooms]\nmax_keys = 0\n",
        "[[rooms.declare]]\nname = \"k\"\nmax_keys = 2000000\n",
    ] {
        let key = key_of(Config::from_toml("t", bad, no_env()).unwrap_err());
        assert!(key.ends_with("max_keys"), "{key}");
    }
}
