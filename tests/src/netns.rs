//! Network namespaces as machines, for the multi-host tests (`tests/tests/netns.rs`).
//!
//! A [`Lab`] is a set of namespaces, one per "machine", each with one veth interface (`eth0`,
//! an address in 10.214.0.0/24) whose other end is a port of a bridge that lives in a hub
//! namespace of its own. Nothing is added to the machine's own network namespace: every
//! interface is created directly inside the namespaces (`ip link add ... netns`), so traffic
//! stays inside the namespaces the test made, and two test runs never clash (namespace names
//! carry the process id and a counter; the addresses live inside them).
//!
//! Faults are `iptables` rules inside one machine's namespace ([`Lab::iptables`]); the kernels
//! here have no `netem`, so delay comes from [`crate::proxy`].
//!
//! Dropping the lab deletes its namespaces (and with them the veths and the bridge), also while
//! a test panics. A lab whose test process was killed outright is deleted by the next run
//! ([`Lab::create`] removes namespaces whose process is gone).

use std::fs;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace a lab creates: `tsnet-<pid>-<n>-<machine>`.
const PREFIX: &str = "tsnet-";

/// Why the namespace tests cannot run here (they then pass with a "skipped: ..." line).
#[derive(Debug)]
pub struct Skip(pub String);

/// A set of namespaces joined by a bridge.
pub struct Lab {
    /// `tsnet-<pid>-<n>-`.
    prefix: String,
    /// Machine names, in creation order; machine `i` has address 10.214.0.(10 + i).
    machines: Vec<String>,
    /// Every namespace created so far (the hub included), deleted on drop.
    created: Vec<String>,
}

impl Lab {
    /// Create one namespace per name in `machines` plus the hub with the bridge. Skips (rather
    /// than fails) when this process may not create namespaces or `iptables` is missing.
    pub fn create(machines: &[&str]) -> Result<Lab, Skip> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Skip("needs root for `ip netns add` (run `just test` as root to include it)".into()));
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("-V").output().is_err() && Command::new(tool).arg("--version").output().is_err() {
                return Err(Skip(format!("`{tool}` is not installed (Debian: iproute2, iptables; `just test` installs them)")));
            }
        }
        remove_abandoned();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let prefix = format!("{PREFIX}{}-{}-", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let mut lab = Lab { prefix, machines: machines.iter().map(|m| m.to_string()).collect(), created: Vec::new() };
        let hub = lab.ns("hub");
        if let Err(e) = run(&["ip", "netns", "add", &hub]) {
            return Err(Skip(format!("`ip netns add` is not permitted here: {e}")));
        }
        lab.created.push(hub.clone());
        lab.setup(&hub).map_err(|e| Skip(format!("cannot build the namespaces: {e}")))?;
        Ok(lab)
    }

    fn setup(&mut self, hub: &str) -> Result<(), String> {
        run(&["ip", "-n", hub, "link", "set", "lo", "up"])?;
        run(&["ip", "-n", hub, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", hub, "link", "set", "br0", "up"])?;
        for (i, machine) in self.machines.clone().iter().enumerate() {
            let ns = self.ns(machine);
            run(&["ip", "netns", "add", &ns])?;
            self.created.push(ns.clone());
            let port = format!("p{i}");
            run(&["ip", "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", hub])?;
            run(&["ip", "-n", hub, "link", "set", &port, "master", "br0", "up"])?;
            run(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", self.ip(machine)), "dev", "eth0"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// The namespace of `machine`.
    pub fn ns(&self, machine: &str) -> String {
        format!("{}{machine}", self.prefix)
    }

    /// The address of `machine` on the bridge.
    pub fn ip(&self, machine: &str) -> Ipv4Addr {
        let i = self.machines.iter().position(|m| m == machine).unwrap_or_else(|| panic!("no machine {machine}"));
        Ipv4Addr::new(10, 214, 0, 10 + i as u8)
    }

    /// A command that runs `program` inside `machine`'s namespace.
    pub fn command(&self, machine: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(machine), program]);
        c
    }

    /// `iptables <rule...>` inside `machine`'s namespace (e.g. `-A INPUT -i eth0 -j DROP`).
    pub fn iptables(&self, machine: &str, rule: &[&str]) {
        let mut args = vec!["ip", "netns", "exec"];
        let ns = self.ns(machine);
        args.push(&ns);
        args.push("iptables");
        args.extend_from_slice(rule);
        run(&args).unwrap_or_else(|e| panic!("iptables in {machine}: {e}"));
    }

    /// Packets the DROP rules in `machine`'s namespace have dropped so far (proof that a fault
    /// was really on the path).
    pub fn dropped(&self, machine: &str) -> u64 {
        let ns = self.ns(machine);
        let out = run(&["ip", "netns", "exec", &ns, "iptables", "-L", "-v", "-n", "-x"])
            .unwrap_or_else(|e| panic!("iptables -L in {machine}: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(2) == Some(&"DROP")).then(|| fields[0].parse::<u64>().ok()).flatten()
            })
            .sum()
    }

    /// Remove every rule in `machine`'s namespace (heal).
    pub fn heal(&self, machine: &str) {
        self.iptables(machine, &["-F"]);
    }

    /// Move the calling thread into `machine`'s network namespace (threads it spawns from then
    /// on start there too). Only this thread moves; the rest of the process stays.
    pub fn enter(&self, machine: &str) {
        enter_ns(&self.ns(machine));
    }
}

/// Move the calling thread into the named network namespace.
pub fn enter_ns(ns: &str) {
    let path = format!("/run/netns/{ns}");
    let file = fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: a valid, open namespace file descriptor; setns affects only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                eprintln!("warning: cannot delete namespace {ns}: {e}");
            }
        }
    }
}

/// Delete the namespaces of labs whose test process no longer exists (killed with SIGKILL, so
/// no drop ran).
fn remove_abandoned() {
    let Ok(entries) = fs::read_dir("/run/netns") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", &name]);
        }
    }
}

/// Run a command; its stderr as the error when it fails.
fn run(args: &[&str]) -> Result<Output, String> {
    let output = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !output.status.success() {
        return Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(output)
}
