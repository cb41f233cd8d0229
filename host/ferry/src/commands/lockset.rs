//! The migration locks a command holds: one per database, taken in a fixed order and
//! released in reverse when the set is dropped, on every path out (an error, an early
//! return, a panic). Every command that takes a lock takes it through a [`LockSet`];
//! none releases one by hand.

use crate::backend::Connection;
use crate::runner::Runner;
use std::ops::{Deref, DerefMut};

/// Something holding one database's migration lock, which it gives back on `release`.
pub(crate) trait Held {
    /// Gives the lock back. Called once, by [`LockSet`]'s `Drop`.
    fn release(&mut self);
}

/// A connection holding the backend's lock, its holder never recorded (the commands
/// that lock this way take milliseconds, and one that refuses must write nothing).
impl Held for Box<dyn Connection> {
    fn release(&mut self) {
        crate::lock::release_unrecorded(self.as_mut());
    }
}

/// A borrowed connection holding the backend's lock, as for `Box<dyn Connection>`.
impl Held for &mut dyn Connection {
    fn release(&mut self) {
        crate::lock::release_unrecorded(&mut **self);
    }
}

/// A runner (which took the lock when it was made), once it is made: releasing it
/// clears its holder record if it wrote one.
impl Held for Option<Runner> {
    fn release(&mut self) {
        if let Some(runner) = self.take() {
            runner.release();
        }
    }
}

/// One item per database (indexed as [`crate::databases::Databases::list`]), the
/// locks of those taken; dereferences to the items.
pub(crate) struct LockSet<T: Held> {
    items: Vec<T>,
    /// The indices whose lock was taken, in the order taken.
    taken: Vec<usize>,
}

impl<T: Held> LockSet<T> {
    /// Takes the lock of each item in `order` with `take`. When one cannot be taken,
    /// those already taken are released (in reverse) before the error is returned.
    pub(crate) fn acquire<E>(
        items: Vec<T>,
        order: impl IntoIterator<Item = usize>,
        mut take: impl FnMut(usize, &mut T) -> Result<(), E>,
    ) -> Result<LockSet<T>, E> {
        let mut set = LockSet {
            items,
            taken: Vec::new(),
        };
        for i in order {
            take(i, &mut set.items[i])?;
            set.taken.push(i);
        }
        Ok(set)
    }
}

impl<T: Held> Deref for LockSet<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T: Held> DerefMut for LockSet<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.items
    }
}

impl<T: Held> Drop for LockSet<T> {
    fn drop(&mut self) {
        while let Some(i) = self.taken.pop() {
            self.items[i].release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Notes the order in which locks are given back.
    struct Noted {
        id: usize,
        log: Rc<RefCell<Vec<usize>>>,
    }

    impl Held for Noted {
        fn release(&mut self) {
            self.log.borrow_mut().push(self.id);
        }
    }

    fn items(n: usize, log: &Rc<RefCell<Vec<usize>>>) -> Vec<Noted> {
        (0..n)
            .map(|id| Noted {
                id,
                log: log.clone(),
            })
            .collect()
    }

    #[test]
    fn releases_in_reverse_order_of_taking() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let set = LockSet::acquire(items(3, &log), [2, 0, 1], |_, _| Ok::<(), ()>(())).unwrap();
        assert!(log.borrow().is_empty(), "nothing released while held");
        drop(set);
        assert_eq!(*log.borrow(), vec![1, 0, 2]);
    }

    #[test]
    fn a_lock_not_taken_releases_those_taken_and_only_those() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let refused = LockSet::acquire(items(3, &log), [1, 2, 0], |i, _| {
            if i == 0 {
                Err("held elsewhere")
            } else {
                Ok(())
            }
        });
        assert_eq!(refused.err(), Some("held elsewhere"));
        assert_eq!(*log.borrow(), vec![2, 1]);
    }

    #[test]
    fn items_not_in_the_order_are_never_released() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut set = LockSet::acquire(items(2, &log), [1], |_, _| Ok::<(), ()>(())).unwrap();
        assert_eq!(set[0].id, 0);
        set[1].id = 7;
        drop(set);
        assert_eq!(*log.borrow(), vec![7]);
    }

    #[test]
    fn a_panic_under_the_locks_still_releases_them() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let inner = log.clone();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _set = LockSet::acquire(items(2, &inner), [0, 1], |_, _| Ok::<(), ()>(())).unwrap();
            panic!("a command failed under the locks");
        }));
        assert!(caught.is_err());
        assert_eq!(*log.borrow(), vec![1, 0]);
    }
}
