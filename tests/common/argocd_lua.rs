//! Runs the Argo CD Lua scripts of `integrations/argocd/` with the real Lua
//! interpreters (`lua5.4`, and `lua5.1` when installed: Argo CD's gopher-lua
//! is Lua 5.1), the way Argo CD does: the object as the global `obj`, only
//! the libraries Argo CD opens for argocd-cm scripts, the script's return
//! value read back. The object goes in as a generated Lua
//! table literal and the result comes out through a small JSON encoder
//! written in Lua, so no Lua library is needed.
//!
//! Also holds kstatus's documented rules (what Flux reads) and the JSON merge
//! patch Argo CD sends when it applies an action's result.

// Each test crate that includes this file uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// The upstream-shaped directory `resource_customizations/sluice.dev`.
pub fn customizations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("integrations/argocd/resource_customizations/sluice.dev")
}

/// `health.lua` of `kind` (`Rollout` or `AnalysisRun`).
pub fn health_script(kind: &str) -> PathBuf {
    customizations().join(kind).join("health.lua")
}

/// The action scripts, in the order the README lists them.
pub const ACTIONS: [&str; 6] = [
    "promote",
    "promote-full",
    "abort",
    "retry",
    "pause",
    "resume",
];

/// `actions/<name>/action.lua` of the Rollout.
pub fn action_script(name: &str) -> PathBuf {
    customizations()
        .join("Rollout/actions")
        .join(name)
        .join("action.lua")
}

/// Interpreters to run every script under: lua5.4 always, lua5.1 when present.
pub fn interpreters() -> Vec<&'static str> {
    let present = |bin: &str| {
        Command::new(bin)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        present("lua5.4"),
        "lua5.4 is needed for the Argo CD tests (tests/cluster/install-deps.sh installs it)"
    );
    let mut found = vec!["lua5.4"];
    if present("lua5.1") {
        found.push("lua5.1");
    }
    found
}

/// A Lua string literal holding `text` byte for byte (valid in 5.1 and 5.4).
fn lua_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for byte in text.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(byte as char),
            // Decimal escapes work in every Lua version; UTF-8 bytes included.
            _ => out.push_str(&format!("\\{byte:03}")),
        }
    }
    out.push('"');
    out
}

/// `value` as a Lua expression. JSON nulls are left out, as Argo CD's
/// conversion leaves them (a nil cannot be stored in a table); arrays are
/// marked so that the encoder writes them back as arrays even when empty.
pub fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let inner: Vec<String> = items
                .iter()
                .filter(|v| !v.is_null())
                .map(lua_literal)
                .collect();
            format!("arr{{{}}}", inner.join(","))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}]={}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
    }
}

/// The JSON encoder and the table helpers, in Lua 5.1/5.4 common ground.
const PRELUDE: &str = r#"
local ARRAY = {}
function arr(t) return setmetatable(t, ARRAY) end
local function quote(s)
  local escaped = string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. escaped .. '"'
end
local function encode(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "string" then return quote(v) end
  if t == "number" then
    if v == math.floor(v) and v > -1e15 and v < 1e15 then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t ~= "table" then error("cannot encode a " .. t) end
  local keys, sequence = {}, true
  for k in pairs(v) do
    keys[#keys + 1] = k
    if type(k) ~= "number" then sequence = false end
  end
  if getmetatable(v) == ARRAY or (sequence and #keys > 0 and #keys == #v) then
    local parts = {}
    for i = 1, #v do parts[i] = encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for i = 1, #keys do keys[i] = tostring(keys[i]) end
  table.sort(keys)
  local parts = {}
  for i = 1, #keys do parts[i] = quote(keys[i]) .. ":" .. encode(v[keys[i]]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
"#;

/// What Argo CD opens for scripts from argocd-cm (`util/lua/lua.go`: the
/// base, package and table libraries and a safe `os` with `time` and `date`;
/// no `string`, `math` or `io`), with `obj` as a global.
const ARGOCD_ENV: &str = r#"
local function argocd_env(object)
  local env = {}
  for _, name in ipairs({"assert", "error", "ipairs", "next", "pairs", "pcall", "print",
      "select", "tonumber", "tostring", "type", "unpack", "xpcall", "setmetatable",
      "getmetatable", "rawequal", "rawget", "rawset", "require", "_VERSION"}) do
    env[name] = _G[name]
  end
  env.table = table
  env.os = {time = os.time, date = os.date}
  env.obj = object
  env._G = env
  return env
end
local function load_in(source, name, env)
  if setfenv ~= nil then
    local chunk = assert(loadstring(source, name))
    setfenv(chunk, env)
    return chunk
  end
  return assert(load(source, name, "t", env))
end
"#;

/// The whole program: prelude, `obj`, then the script as Argo CD runs it.
fn program(script: &Path, obj: &Value) -> String {
    let path = lua_string(&script.display().to_string());
    format!(
        "{PRELUDE}{ARGOCD_ENV}\nlocal object = {}\nlocal fh = assert(io.open({path}, \"rb\"))\nlocal source = fh:read(\"*a\")\nfh:close()\nlocal chunk = load_in(source, \"=\" .. {path}, argocd_env(object))\nio.write(encode(chunk()))\n",
        lua_literal(obj)
    )
}

/// Run `program` with `interpreter`, bounded in time; the standard output.
fn run_with(interpreter: &str, program: &str) -> Result<String, String> {
    let mut child = Command::new(interpreter)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {interpreter}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(program.as_bytes())
            .map_err(|e| format!("{interpreter}: writing the program: {e}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{interpreter} did not finish within 20 s"));
            }
        }
    }
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() || !err.is_empty() {
        return Err(format!("{interpreter} failed ({status}): {err}"));
    }
    Ok(out)
}

/// Run `script` on `obj` under every interpreter; all must agree. The
/// script's return value, as JSON.
pub fn run(script: &Path, obj: &Value) -> Value {
    let program = program(script, obj);
    let mut first: Option<(String, Value)> = None;
    for interpreter in interpreters() {
        let out =
            run_with(interpreter, &program).unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        let value: Value = serde_json::from_str(&out).unwrap_or_else(|e| {
            panic!("{interpreter} {}: not JSON ({e}): {out}", script.display())
        });
        match &first {
            None => first = Some((interpreter.to_string(), value)),
            Some((name, seen)) => assert_eq!(
                seen,
                &value,
                "{} gives different results under {name} and {interpreter}",
                script.display()
            ),
        }
    }
    first.map(|(_, v)| v).unwrap_or(Value::Null)
}

/// Argo CD's health of `obj` (kind `Rollout` or `AnalysisRun`): (status, message).
pub fn health(kind: &str, obj: &Value) -> (String, String) {
    let hs = run(&health_script(kind), obj);
    let text = |key: &str| hs[key].as_str().unwrap_or_default().to_string();
    (text("status"), text("message"))
}

/// The Rollout's action discovery: action name → disabled.
pub fn discovery(obj: &Value) -> BTreeMap<String, bool> {
    let actions = run(&customizations().join("Rollout/actions/discovery.lua"), obj);
    actions
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(name, a)| (name.clone(), a["disabled"].as_bool().unwrap_or(false)))
                .collect()
        })
        .unwrap_or_default()
}

/// The object action `name` returns for `obj`.
pub fn action(name: &str, obj: &Value) -> Value {
    run(&action_script(name), obj)
}

/// kstatus's status of `obj` by its documented rules (sigs.k8s.io/cli-utils
/// `status.Compute` for a kind without built-in rules, as Flux uses it):
/// `Terminating`, `InProgress`, `Failed` or `Current`.
pub fn kstatus(obj: &Value) -> &'static str {
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating";
    }
    let generation = obj["metadata"]["generation"].as_i64();
    let observed = obj["status"]["observedGeneration"].as_i64();
    if let (Some(g), Some(o)) = (generation, observed)
        && g != o
    {
        return "InProgress";
    }
    let conditions = obj["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let is = |kind: &str, status: &str| {
        conditions
            .iter()
            .any(|c| c["type"] == kind && c["status"] == status)
    };
    for c in &conditions {
        if c["type"] == "Reconciling" && c["status"] == "True" {
            return "InProgress";
        }
        if c["type"] == "Stalled" && c["status"] == "True" {
            return "Failed";
        }
    }
    if is("Ready", "True") {
        "Current"
    } else if is("Ready", "False") || is("Ready", "Unknown") {
        "InProgress"
    } else {
        // No known condition at all: kstatus assumes the resource is current.
        "Current"
    }
}

/// The RFC 7386 merge patch that turns `from` into `to` (what Argo CD sends
/// for an action's result): changed keys, and null for removed ones.
pub fn merge_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for (key, old) in a {
                match b.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new) if new != old => {
                        patch.insert(key.clone(), merge_patch(old, new));
                    }
                    Some(_) => {}
                }
            }
            for (key, new) in b {
                if !a.contains_key(key) {
                    patch.insert(key.clone(), new.clone());
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

/// `obj` without the fields a fixture should not carry (managedFields), and
/// without nulls (which Argo CD's conversion drops as well).
pub fn fixture_of(mut obj: Value) -> Value {
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    strip_nulls(&mut obj);
    obj
}

fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(strip_nulls);
        }
        _ => {}
    }
}
