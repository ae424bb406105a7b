//! The real `toystore serve` refuses a manifest with a misspelled key, naming the
//! file, the key and the keys it knows, instead of silently running with a default.

use std::process::Command;
use std::time::{Duration, Instant};

use toystore_e2e::{host_binary, manifest_for, test_settings, Ports};

/// Run `toystore serve` on `text`; it must exit on its own. Returns (exit code, stderr).
fn serve(text: &str) -> (Option<i32>, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toystore.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(host_binary())
        .args(["serve", "--manifest"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start toystore");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("toystore serve kept running with a misspelled manifest");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), path, dir)
}

#[test]
fn a_misspelled_setting_stops_serve_with_a_message_naming_it() {
    let good = manifest_for(std::path::Path::new("/tmp/unused"), &Ports::pick().unwrap(), &test_settings());
    assert!(good.contains("cache_capacity = "), "{good}");
    let typo = good.replacen("cache_capacity = ", "cache_capacty = ", 1);
    let (code, stderr, path, _dir) = serve(&typo);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "names the file: {stderr}");
    assert!(stderr.contains("cache_capacty"), "names the key: {stderr}");
    assert!(stderr.contains("`cache_capacity`") && stderr.contains("`call_timeout_ms`"), "lists the known keys: {stderr}");
}

#[test]
fn a_misspelled_service_key_stops_serve_too() {
    let good = manifest_for(std::path::Path::new("/tmp/unused"), &Ports::pick().unwrap(), &test_settings());
    let typo = good.replacen("data_dir = ", "data_dri = ", 1);
    let (code, stderr, _path, _dir) = serve(&typo);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("data_dri") && stderr.contains("`listen`"), "{stderr}");
}
