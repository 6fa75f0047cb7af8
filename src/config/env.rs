//! `HUB_<SECTION>__<KEY>` environment overrides, applied to the parsed TOML table
//! before it is typed, so a bad value fails exactly like a bad file value.
//!
//! Each value is parsed by the type the key has in the defaults: integers,
//! booleans, strings, and arrays as comma-separated lists (`rooms.declare` takes
//! room names).

use crate::config::{Config, ConfigError, ENV_PREFIX};

/// Applies every `HUB_X__Y` variable in `env` to `table`.
///
/// Variables with the prefix but no double underscore (e.g. `HUB_LOG_FORMAT`) are
/// not config keys and are left alone; an unknown section or key is an error.
pub fn apply_env<I>(table: &mut toml::Table, env: I) -> Result<(), ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let defaults = toml::Table::try_from(Config::default()).map_err(|e| ConfigError::Key {
        key: "(defaults)".into(),
        message: e.to_string(),
    })?;
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
        .collect();
    vars.sort();
    for (var, raw) in vars {
        let rest = &var[ENV_PREFIX.len()..];
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let dotted = format!("{section}.{key}");
        let unknown = || ConfigError::Key {
            key: dotted.clone(),
            message: format!("{var} names no config key"),
        };
        let default = defaults
            .get(&section)
            .and_then(|s| s.as_table())
            .and_then(|s| s.get(&key))
            .ok_or_else(unknown)?;
        let value = parse_as(default, &dotted, &var, &raw)?;
        let section_table = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match section_table.as_table_mut() {
            Some(t) => {
                t.insert(key, value);
            }
            None => {
                return Err(ConfigError::Key {
                    key: section,
                    message: "must be a table".into(),
                })
            }
        }
    }
    Ok(())
}

fn parse_as(
    default: &toml::Value,
    dotted: &str,
    var: &str,
    raw: &str,
) -> Result<toml::Value, ConfigError> {
    let bad = |expected: &str| ConfigError::Key {
        key: dotted.to_string(),
        message: format!("{var}=`{raw}` is not {expected}"),
    };
    let trimmed = raw.trim();
    Ok(match default {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => {
            toml::Value::Integer(trimmed.parse().map_err(|_| bad("an integer"))?)
        }
        toml::Value::Float(_) => toml::Value::Float(trimmed.parse().map_err(|_| bad("a number"))?),
        toml::Value::Boolean(_) => toml::Value::Boolean(match trimmed {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(bad("a boolean (true/false)")),
        }),
        toml::Value::Array(_) => {
            let items = trimmed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            if dotted == "rooms.declare" {
                toml::Value::Array(
                    items
                        .map(|name| {
                            let mut t = toml::Table::new();
                            t.insert("name".into(), toml::Value::String(name));
                            toml::Value::Table(t)
                        })
                        .collect(),
                )
            } else {
                toml::Value::Array(items.map(toml::Value::String).collect())
            }
        }
        _ => return Err(bad("settable from the environment")),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_are_parsed_by_type() {
        let c = Config::from_toml(
            "t",
            "",
            env(&[
                ("HUB_SERVER__BIND", "127.0.0.1:9000"),
                ("HUB_SERVER__WORKERS", "3"),
                ("HUB_ROOMS__ALLOW_DYNAMIC", "true"),
                (
                    "HUB_SERVER__ALLOWED_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("HUB_ROOMS__DECLARE", "x,y"),
                ("HUB_LOG_FORMAT", "json"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.server.bind, "127.0.0.1:9000");
        assert_eq!(c.server.workers, 3);
        assert!(c.rooms.allow_dynamic);
        assert_eq!(
            c.server.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        let names: Vec<_> = c.rooms.declare.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["x", "y"]);
    }

    #[test]
    fn env_overrides_win_over_the_file() {
        let c = Config::from_toml(
            "t",
            "[websocket]\noutbound_queue = 5\n",
            env(&[("HUB_WEBSOCKET__OUTBOUND_QUEUE", "9")]),
        )
        .expect("valid");
        assert_eq!(c.websocket.outbound_queue, 9);
    }

    #[test]
    fn bad_env_values_name_the_key() {
        for (var, value, key) in [
            ("HUB_SERVER__WORKERS", "many", "server.workers"),
            ("HUB_SERVER__NOPE", "1", "server.nope"),
            ("HUB_NOPE__BIND", "1", "nope.bind"),
            ("HUB_ROOMS__ALLOW_DYNAMIC", "perhaps", "rooms.allow_dynamic"),
            (
                "HUB_WEBSOCKET__OUTBOUND_QUEUE",
                "-1",
                "websocket.outbound_queue",
            ),
        ] {
            match Config::from_toml("t", "", env(&[(var, value)])) {
                Err(ConfigError::Key { key: k, .. }) => assert_eq!(k, key, "{var}"),
                other => panic!("{var}: expected key error, got {other:?}"),
            }
        }
    }
}
