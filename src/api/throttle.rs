//! Login brute-force protection: failures counted per account and per client network within a
//! sliding window, in the database, so every node of a service counts the same failures.
//! Keys are hashes of fixed length, whatever the client sent; an IPv6 client counts per /64,
//! since it can take any address of its network.
use std::{net::IpAddr, time::Duration};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use sha2::{Digest, Sha256};

use crate::{domain::now, error::Result};
use entities::login_failures;

pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
}

/// A throttled identity: an account or a client network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    pub fn email(email: &str) -> Self {
        Self::hashed("email", &email.trim().to_lowercase())
    }

    pub fn client(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::hashed("ip", &v4.to_string()),
            IpAddr::V6(v6) => {
                let net = ipnet::Ipv6Net::new(v6, 64).map(|n| n.trunc());
                Self::hashed("ip6", &net.map_or(v6.to_string(), |n| n.to_string()))
            }
        }
    }

    fn hashed(kind: &str, value: &str) -> Self {
        Self(hex::encode(Sha256::digest(format!("{kind}:{value}"))))
    }
}

impl LoginThrottle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
        }
    }

    fn window_start(&self) -> chrono::DateTime<chrono::Utc> {
        now() - chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::days(1))
    }

    /// Seconds to wait if any of the keys is locked out: until the oldest of its last
    /// `max_failures` failures leaves the window.
    pub async fn retry_after(
        &self,
        db: &impl ConnectionTrait,
        keys: &[Key],
    ) -> Result<Option<u64>> {
        let mut wait = None;
        for key in keys {
            let recent: Vec<chrono::DateTime<chrono::Utc>> = login_failures::Entity::find()
                .select_only()
                .column(login_failures::Column::FailedAt)
                .filter(login_failures::Column::Key.eq(&key.0))
                .filter(login_failures::Column::FailedAt.gt(self.window_start()))
                .order_by_desc(login_failures::Column::FailedAt)
                .limit(u64::from(self.max_failures))
                .into_tuple()
                .all(db)
                .await?;
            if recent.len() as u64 >= u64::from(self.max_failures)
                && let Some(oldest) = recent.last()
            {
                let left = (*oldest - self.window_start()).num_seconds().max(0) as u64 + 1;
                wait = wait.max(Some(left));
            }
        }
        Ok(wait)
    }

    pub async fn record_failure(&self, db: &impl ConnectionTrait, keys: &[Key]) -> Result<()> {
        let at = now();
        let rows = keys.iter().map(|key| login_failures::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            key: Set(key.0.clone()),
            failed_at: Set(at),
        });
        login_failures::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
        Ok(())
    }

    pub async fn reset(&self, db: &impl ConnectionTrait, key: &Key) -> Result<()> {
        login_failures::Entity::delete_many()
            .filter(login_failures::Column::Key.eq(&key.0))
            .exec(db)
            .await?;
        Ok(())
    }

    /// Drops failures that have left the window; returns how many.
    pub async fn sweep(&self, db: &impl ConnectionTrait) -> Result<u64> {
        let res = login_failures::Entity::delete_many()
            .filter(login_failures::Column::FailedAt.lte(self.window_start()))
            .exec(db)
            .await?;
        Ok(res.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_one_length_and_ipv6_counts_per_64() {
        let huge = "a".repeat(1 << 20);
        assert_eq!(Key::email(&huge).0.len(), 64);
        assert_eq!(
            Key::email(" Ann@Example.com "),
            Key::email("ann@example.com")
        );
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_net: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Key::client(one), Key::client(same_net));
        assert_ne!(Key::client(one), Key::client(other_net));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            Key::client(mapped),
            Key::client("192.0.2.1".parse().unwrap())
        );
    }
}
