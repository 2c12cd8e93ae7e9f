//! Password guessing, slowed down: failed logins are counted per account and address,
//! per address, and per account; past a few free failures each further attempt must
//! wait, 1 s doubling up to 15 minutes, and the counts are forgotten 15 minutes after
//! the last failure. An account as a whole gets [`ACCOUNT_WIDE_FACTOR`] times the free
//! failures: one address guessing (or trying to lock someone out) is stopped by its own
//! counts long before, so the owner logging in from elsewhere is not locked out by
//! a stranger, while guessing spread over many addresses is still slowed. Every
//! attempt is counted as a failure *before* the password is checked ([`begin`]), so
//! a hundred parallel guesses cannot all slip past the check; a success then clears
//! the account's count and takes back its one charge on the address (an attacker's own
//! valid login must not clear their address's count). Per replica, in memory.
//!
//! [`begin`]: LoginThrottle::begin
//!
//! ```
//! use std::time::{Duration, Instant};
//! use wangge::auth::LoginThrottle;
//! let throttle = LoginThrottle::new(2);
//! let (now, addr) = (Instant::now(), "192.0.2.1".parse().unwrap());
//! for _ in 0..2 {
//!     assert!(throttle.begin("zhang", addr, now).is_ok()); // then a wrong password
//! }
//! // Two free failures used: the third attempt must wait a second.
//! assert_eq!(throttle.begin("zhang", addr, now), Err(Duration::from_secs(1)));
//! assert!(throttle.begin("zhang", addr, now + Duration::from_secs(1)).is_ok());
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts are forgotten this long after the last failure.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The longest wait between attempts.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Entries kept before idle ones are pruned on the spot.
const MAX_ENTRIES: usize = 100_000;

/// Whose budget an address is charged to: an IPv4 address (also when carried inside an
/// IPv6 one: mapped, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`), or an IPv6 address's
/// /64 (one subscriber's network: otherwise each of its 2^64 addresses would get a
/// budget of its own).
///
/// ```
/// use std::net::IpAddr;
/// use wangge::auth::client_network;
/// let ip = |s: &str| s.parse::<IpAddr>().unwrap();
/// assert_eq!(client_network(ip("2001:db8:1:2::7")), client_network(ip("2001:db8:1:2:ffff::1")));
/// assert_eq!(client_network(ip("64:ff9b::c633:6407")), ip("198.51.100.7"));
/// ```
pub fn client_network(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let bits = u128::from(v6);
    let embedded = |shift: u32| IpAddr::V4(std::net::Ipv4Addr::from((bits >> shift) as u32));
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return embedded(0);
    }
    if bits >> 112 == 0x2002 {
        return embedded(80);
    }
    IpAddr::V6(std::net::Ipv6Addr::from(bits & !((1u128 << 64) - 1)))
}
/// How many more free failures an account has in all than from one address.
pub const ACCOUNT_WIDE_FACTOR: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// One account from one address: the tight count.
    AccountFrom(String, IpAddr),
    Address(IpAddr),
    /// One account from anywhere: the loose count against spread-out guessing.
    Account(String),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    /// When a refusal on this key was last reported (audited).
    reported: Option<Instant>,
}

/// Refused attempts are reported at most this often per account or address.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Failed logins per account and per address.
#[derive(Debug)]
pub struct LoginThrottle {
    free: u32,
    failures: Mutex<HashMap<Key, Failures>>,
}

/// The account as counted (bounded: a megabyte-long name is one short key).
fn account_name(name: &str) -> String {
    name.trim().chars().take(128).collect()
}

/// The three counts an attempt is charged to.
fn keys(name: &str, addr: IpAddr) -> [Key; 3] {
    let name = account_name(name);
    [
        Key::AccountFrom(name.clone(), addr),
        Key::Address(addr),
        Key::Account(name),
    ]
}

impl LoginThrottle {
    /// `free` failures are allowed before waits begin.
    pub fn new(free: u32) -> Self {
        LoginThrottle {
            free,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn free_for(&self, key: &Key) -> u32 {
        match key {
            Key::Account(_) => self.free.saturating_mul(ACCOUNT_WIDE_FACTOR),
            _ => self.free,
        }
    }

    fn wait(&self, f: &Failures, free: u32, now: Instant) -> Duration {
        let since = now.saturating_duration_since(f.last);
        if since >= FORGET_AFTER || f.count < free {
            return Duration::ZERO;
        }
        let exponent = (f.count - free).min(20);
        let wait = Duration::from_secs(1u64 << exponent).min(MAX_WAIT);
        wait.saturating_sub(since)
    }

    /// `Err(wait)` when the account or the address must wait before another attempt.
    pub fn check(&self, name: &str, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(failures) = self.failures.lock() else {
            return Ok(());
        };
        let wait = keys(name, addr)
            .iter()
            .filter_map(|k| failures.get(k).map(|f| self.wait(f, self.free_for(k), now)))
            .max()
            .unwrap_or_default();
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Counts a failed attempt against the account from this address, the address and
    /// the account.
    pub fn failed(&self, name: &str, addr: IpAddr, now: Instant) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= MAX_ENTRIES {
            failures.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        }
        // Still full of recent entries (many networks at once): forget the oldest
        // half, so the map stays bounded whatever arrives.
        if failures.len() >= MAX_ENTRIES {
            let mut lasts: Vec<Instant> = failures.values().map(|f| f.last).collect();
            lasts.sort_unstable();
            let cut = lasts[lasts.len() / 2];
            failures.retain(|_, f| f.last > cut);
        }
        for key in keys(name, addr) {
            let entry = failures.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                reported: None,
            });
            if now.saturating_duration_since(entry.last) >= FORGET_AFTER {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        }
    }

    /// Checks, then charges the attempt as a failure until [`succeeded`] says
    /// otherwise. `Err(wait)`: refused, nothing charged.
    ///
    /// [`succeeded`]: LoginThrottle::succeeded
    pub fn begin(&self, name: &str, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        self.check(name, addr, now)?;
        self.failed(name, addr, now);
        Ok(())
    }

    /// A correct password: the account starts afresh, and the address gets back the
    /// charge of this attempt (no more).
    pub fn succeeded(&self, name: &str, addr: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            let [from, _, whole] = keys(name, addr);
            failures.remove(&from);
            failures.remove(&whole);
            if let Some(f) = failures.get_mut(&Key::Address(addr)) {
                f.count = f.count.saturating_sub(1);
            }
        }
    }

    /// Whether a refused attempt should be reported now: once a minute per account or
    /// address while refusals go on, so guessing leaves a trace without each refused
    /// attempt writing to the audit log.
    pub fn report_refusal(&self, name: &str, addr: IpAddr, now: Instant) -> bool {
        let Ok(mut failures) = self.failures.lock() else {
            return false;
        };
        let mut due = false;
        for key in keys(name, addr) {
            if let Some(f) = failures.get_mut(&key)
                && f.reported
                    .is_none_or(|r| now.saturating_duration_since(r) >= REPORT_EVERY)
            {
                f.reported = Some(now);
                due = true;
            }
        }
        due
    }

    /// Drops counts nobody needs any more.
    pub fn prune(&self, now: Instant) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
        }
    }

    /// How many accounts and addresses are being counted.
    pub fn len(&self) -> usize {
        self.failures.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Whether nothing is being counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn waits_double_per_failure_and_cap_at_fifteen_minutes() {
        let t = LoginThrottle::new(5);
        let now = Instant::now();
        for _ in 0..5 {
            assert_eq!(t.check("a", addr("192.0.2.1"), now), Ok(()));
            t.failed("a", addr("192.0.2.1"), now);
        }
        assert_eq!(
            t.check("a", addr("192.0.2.1"), now),
            Err(Duration::from_secs(1))
        );
        t.failed("a", addr("192.0.2.1"), now);
        t.failed("a", addr("192.0.2.1"), now);
        assert_eq!(
            t.check("a", addr("192.0.2.1"), now),
            Err(Duration::from_secs(4))
        );
        for _ in 0..30 {
            t.failed("a", addr("192.0.2.1"), now);
        }
        assert_eq!(t.check("a", addr("192.0.2.1"), now), Err(MAX_WAIT));
        // Forgotten a quarter of an hour after the last failure.
        assert_eq!(t.check("a", addr("192.0.2.1"), now + FORGET_AFTER), Ok(()));
    }

    #[test]
    fn a_stranger_guessing_from_one_address_does_not_lock_the_owner_out_elsewhere() {
        let t = LoginThrottle::new(3);
        let now = Instant::now();
        let stranger = addr("203.0.113.9");
        for _ in 0..3 {
            t.begin("owner", stranger, now).unwrap();
        }
        assert!(
            t.begin("owner", stranger, now).is_err(),
            "the stranger waits"
        );
        // The stranger keeps trying as each wait ends, for an hour.
        let mut at = now;
        for _ in 0..200 {
            at += Duration::from_secs(20);
            let _ = t.begin("owner", stranger, at);
        }
        assert!(t.check("owner", stranger, at).is_err());
        assert_eq!(
            t.check("owner", addr("198.51.100.7"), at),
            Ok(()),
            "the owner, elsewhere"
        );
    }

    #[test]
    fn an_account_is_protected_from_many_addresses_and_an_address_across_accounts() {
        let t = LoginThrottle::new(3);
        let now = Instant::now();
        for i in 0..3 * ACCOUNT_WIDE_FACTOR {
            t.failed("victim", addr(&format!("198.51.100.{i}")), now);
        }
        assert!(t.check("victim", addr("198.51.100.200"), now).is_err());
        for i in 0..3 {
            t.failed(&format!("user{i}"), addr("203.0.113.5"), now);
        }
        assert!(t.check("someone-else", addr("203.0.113.5"), now).is_err());
        // The attacker's own correct login clears that account, not the address.
        t.begin("mine", addr("203.0.113.5"), now + Duration::from_secs(1))
            .unwrap();
        t.succeeded("mine", addr("203.0.113.5"));
        assert!(t.check("someone-else", addr("203.0.113.5"), now).is_err());
        t.prune(now + FORGET_AFTER + Duration::from_secs(1));
        assert!(t.is_empty());
    }
}
