//! Uploads in flight, held together to their user's files quota: two uploads at once
//! (two devices, or two files from the Files page) draw on one budget, so together they
//! cannot pass the quota either. The budget is what the quota leaves when the user's
//! first upload in flight starts; a stored upload's bytes stay drawn until the user's
//! last upload ends (by then they are counted on disk), a failed one's are given back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct Budgets {
    users: Mutex<HashMap<String, Budget>>,
}

#[derive(Debug)]
struct Budget {
    /// None until the first upload in flight has read what the quota leaves.
    left: Option<u64>,
    uploads: usize,
}

/// One upload's share of its user's budget.
#[derive(Debug)]
pub struct Upload {
    budgets: Arc<Budgets>,
    user: String,
    taken: AtomicU64,
    /// Drawn ahead for a declared length, not yet sent.
    prepaid: AtomicU64,
    stored: AtomicBool,
}

impl Budgets {
    /// Enters an upload of `user`'s, before what the quota leaves is read: their budget
    /// stays in place from then on, so an upload of theirs stored meanwhile stays drawn.
    pub fn enter(self: &Arc<Self>, user: &str) -> Arc<Upload> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let budget = users.entry(user.to_owned()).or_insert(Budget {
            left: None,
            uploads: 0,
        });
        budget.uploads += 1;
        Arc::new(Upload {
            budgets: self.clone(),
            user: user.to_owned(),
            taken: AtomicU64::new(0),
            prepaid: AtomicU64::new(0),
            stored: AtomicBool::new(false),
        })
    }
}

impl Upload {
    /// `fresh_left` (the quota less what is stored now, read after [`Budgets::enter`])
    /// becomes the budget unless another upload of the user's set it already.
    pub fn start(&self, fresh_left: u64) {
        let mut users = self.budgets.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(budget) = users.get_mut(&self.user) {
            budget.left.get_or_insert(fresh_left);
        }
    }

    /// Draws `bytes` from the budget ahead (an upload's declared length); false (nothing
    /// drawn) when they do not fit.
    pub fn reserve(&self, bytes: u64) -> bool {
        let drawn = self.draw(bytes);
        if drawn {
            self.prepaid.fetch_add(bytes, Ordering::SeqCst);
        }
        drawn
    }

    /// Counts `bytes` sent: from what was reserved, then from the budget; false when they
    /// do not fit.
    pub fn take(&self, bytes: u64) -> bool {
        let prepaid = self.prepaid.load(Ordering::SeqCst);
        let covered = prepaid.min(bytes);
        self.prepaid.fetch_sub(covered, Ordering::SeqCst);
        bytes == covered || self.draw(bytes - covered)
    }

    fn draw(&self, bytes: u64) -> bool {
        let mut users = self.budgets.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(budget) = users.get_mut(&self.user) else {
            return false;
        };
        match budget.left.and_then(|left| left.checked_sub(bytes)) {
            Some(left) => {
                budget.left = Some(left);
                self.taken.fetch_add(bytes, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// The service stored the upload: its bytes are on disk now.
    pub fn stored(&self) {
        self.stored.store(true, Ordering::SeqCst);
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let mut users = self.budgets.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(budget) = users.get_mut(&self.user) else {
            return;
        };
        if !self.stored.load(Ordering::SeqCst) {
            let taken = self.taken.load(Ordering::SeqCst);
            budget.left = budget.left.map(|left| left.saturating_add(taken));
        }
        budget.uploads = budget.uploads.saturating_sub(1);
        if budget.uploads == 0 {
            users.remove(&self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(budgets: &Arc<Budgets>, user: &str, fresh_left: u64) -> Arc<Upload> {
        let upload = budgets.enter(user);
        upload.start(fresh_left);
        upload
    }

    #[test]
    fn uploads_at_once_share_one_budget() {
        let budgets = Arc::new(Budgets::default());
        let first = join(&budgets, "alice", 100);
        let second = join(&budgets, "alice", 100);
        assert!(first.take(60));
        assert!(!second.take(60), "together they would pass the quota");
        assert!(second.take(40));
        let bob = join(&budgets, "bob", 10);
        assert!(bob.take(10), "each user has their own");

        // A failed upload gives its bytes back; a stored one keeps them drawn while the
        // user's other uploads are in flight.
        drop(second);
        let third = join(&budgets, "alice", 100);
        assert!(third.take(40) && !third.take(1));
        third.stored();
        drop(third);
        let fourth = join(&budgets, "alice", 100);
        assert!(!fourth.take(1), "the stored 40 still count");
        drop(first);
        drop(fourth);
        let later = join(&budgets, "alice", 30);
        assert!(
            later.take(30),
            "with none in flight, what is on disk decides"
        );
        drop(later);

        let declared = join(&budgets, "alice", 100);
        assert!(declared.reserve(70));
        assert!(!join(&budgets, "alice", 100).reserve(31));
        assert!(declared.take(70), "sent within what it declared");
        assert!(declared.take(30) && !declared.take(1));
    }
}
