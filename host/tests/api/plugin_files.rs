// What the loader reads is the file it vetted: each plugin file (and its `<stem>.toml`) is opened
// once without following a symbolic link, checked through that descriptor (a regular file, owner,
// mode) and read from it, with a size cap. A symbolic link, a FIFO or a device is refused with one
// line while the other plugins load, and a reload still answers at once.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{ADMIN, Server, fixtures, server};

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo touches no memory of ours.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

/// `/dev/zero`'s device number at `path`; false where this user may not create devices.
fn mknod_zero(path: &Path) -> bool {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mknod touches no memory of ours.
    unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) == 0 }
}

fn refusals(json: &Value) -> Vec<(String, String)> {
    let mut refused: Vec<(String, String)> = json["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let file = r["file"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
            (file, r["error"].as_str().unwrap().to_owned())
        })
        .collect();
    refused.sort();
    refused
}

fn names(json: &Value) -> Vec<&str> {
    json["plugins"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect()
}

fn reload_promptly(s: &Server) -> Value {
    let started = Instant::now();
    let reply = s.post("/admin/plugins/reload", Some(ADMIN), None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(started.elapsed() < Duration::from_secs(5), "the reload took {:?}", started.elapsed());
    reply.json()
}

#[test]
fn symlinks_fifos_and_devices_are_refused_with_one_line_each_and_the_scan_goes_on() {
    let s = server()
        .no_wait_ready()
        .plugin("50-good.so", &fixtures().static_env, Some("[vars]\nTZ = \"UTC\"\n"))
        .plugin("60-sidecar-fifo.so", &fixtures().test_token_provider, None)
        .plugin("70-sidecar-link.so", &fixtures().append_env, None)
        .start();
    let dir = s.plugin_dir().to_owned();
    std::os::unix::fs::symlink(&fixtures().test_token_provider, dir.join("10-link.so")).unwrap();
    mkfifo(&dir.join("20-fifo.so"));
    let device = mknod_zero(&dir.join("30-zero.so"));
    std::os::unix::fs::symlink("/dev/zero", dir.join("40-dev-zero.so")).unwrap();
    mkfifo(&dir.join("60-sidecar-fifo.toml"));
    let sidecar = s.dir().write_private("append.toml", "suffix = \"x\"\n");
    std::os::unix::fs::symlink(&sidecar, dir.join("70-sidecar-link.toml")).unwrap();
    // Planted after the first scan began; the reload sees them all.
    s.wait_ready();

    let json = reload_promptly(&s);
    assert_eq!(names(&json), ["static-env"], "{json}");
    let mut expected = vec![
        ("10-link.so", "insecure: the plugin file is a symbolic link; put the file itself in its directory"),
        ("20-fifo.so", "insecure: the plugin file is a FIFO, not a regular file"),
        ("40-dev-zero.so", "insecure: the plugin file is a symbolic link; put the file itself in its directory"),
        ("60-sidecar-fifo.so", "insecure: the plugin's configuration file is a FIFO, not a regular file"),
        (
            "70-sidecar-link.so",
            "insecure: the plugin's configuration file is a symbolic link; put the file itself in its directory",
        ),
    ];
    if device {
        expected.push(("30-zero.so", "insecure: the plugin file is a character device, not a regular file"));
    } else {
        eprintln!("cannot create a device node here: the device case is not checked");
    }
    expected.sort();
    let expected: Vec<(String, String)> = expected.into_iter().map(|(f, e)| (f.to_owned(), e.to_owned())).collect();
    assert_eq!(refusals(&json), expected);
    for (_, error) in refusals(&json) {
        assert!(!error.contains('\n'), "one line: {error:?}");
    }
    // Everything else keeps working, and so do more reloads.
    let env = s.post("/admin/workspaces/ws-1/env", Some(ADMIN), Some(r#"{"env":{}}"#));
    assert_eq!(env.status, 200, "{}", env.body);
    assert_eq!(env.json()["env"]["TZ"], "UTC");
    assert_eq!(s.get("/readyz", None).status, 200);
    assert_eq!(refusals(&reload_promptly(&s)), expected);
}

#[test]
fn a_plugin_file_over_the_size_cap_is_refused_with_one_line() {
    let size = std::fs::metadata(&fixtures().static_env).unwrap().len();
    let s = server().config("max_plugin_bytes = 4096\n").plugin("10-big.so", &fixtures().static_env, None).start();
    let json = s.get("/admin/plugins", Some(ADMIN)).json();
    assert_eq!(names(&json), Vec::<&str>::new());
    assert_eq!(
        refusals(&json),
        [(
            "10-big.so".to_owned(),
            format!("too large: the plugin file has {size} bytes, more than max_plugin_bytes (4096)")
        )]
    );
}
