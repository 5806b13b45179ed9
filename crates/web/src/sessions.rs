//! Signed-in browser sessions, in memory: a daemon restart signs everyone
//! out, which is the safe direction. Only a digest of each token is kept.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most sessions open at once; the one nearest its end is dropped for a new one.
const MAX_SESSIONS: usize = 64;

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    /// Sent back by the page in `X-Berth-CSRF` on every change.
    pub csrf: String,
    expires: Instant,
}

pub struct Sessions {
    lifetime: Duration,
    open: Mutex<HashMap<[u8; 32], Session>>,
}

/// A fresh random token, URL- and cookie-safe.
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    pub fn new(lifetime: Duration) -> Self {
        Self { lifetime, open: Mutex::new(HashMap::new()) }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Opens a session for `user`: its cookie token and the session.
    pub fn open(&self, user: &str, now: Instant) -> (String, Session) {
        let token = random_token();
        let session = Session { user: user.to_owned(), csrf: random_token(), expires: now + self.lifetime };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                open.remove(&oldest);
            }
        }
        open.insert(digest(&token), session.clone());
        (token, session)
    }

    /// The live session of `token`.
    pub fn get(&self, token: &str, now: Instant) -> Option<Session> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let key = digest(token);
        match open.get(&key) {
            Some(session) if session.expires > now => Some(session.clone()),
            Some(_) => {
                open.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, token: &str) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&digest(token));
    }

    pub fn clear(&self) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_it_expires_or_is_closed() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let now = Instant::now();
        let (token, session) = sessions.open("admin", now);
        assert_eq!(sessions.get(&token, now + Duration::from_secs(59)).unwrap().csrf, session.csrf);
        assert!(sessions.get(&token, now + Duration::from_secs(60)).is_none());
        let (token, _) = sessions.open("admin", now);
        assert!(sessions.get("forged", now).is_none());
        sessions.close(&token);
        assert!(sessions.get(&token, now).is_none());
    }

    #[test]
    fn opening_more_than_the_limit_drops_the_oldest() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let start = Instant::now();
        let (first, _) = sessions.open("admin", start);
        let tokens: Vec<String> =
            (1..=MAX_SESSIONS as u64).map(|i| sessions.open("admin", start + Duration::from_millis(i)).0).collect();
        assert!(sessions.get(&first, start).is_none());
        assert!(tokens.iter().all(|t| sessions.get(t, start).is_some()));
    }
}
