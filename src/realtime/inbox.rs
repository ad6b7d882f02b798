//! A room task's inbox: unbounded and in order like an mpsc channel, but holding no memory
//! while empty. A tokio channel allocates a block of 32 items up front (2.6 KB with a room's
//! items), for rooms that may see one event a minute; here the task takes everything queued
//! at once and the queue starts empty again.
use std::{collections::VecDeque, sync::Mutex};

use tokio::sync::Notify;

pub(super) struct Inbox<T> {
    queue: Mutex<Queue<T>>,
    queued: Notify,
}

struct Queue<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> Inbox<T> {
    pub(super) fn new() -> Self {
        Self {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                closed: false,
            }),
            queued: Notify::new(),
        }
    }

    /// Queues an item, unless the inbox is closed.
    pub(super) fn send(&self, item: T) {
        {
            let mut queue = self.queue.lock().unwrap();
            if queue.closed {
                return;
            }
            queue.items.push_back(item);
        }
        self.queued.notify_one();
    }

    /// Nothing more comes: the task ends once it has taken what was queued.
    pub(super) fn close(&self) {
        self.queue.lock().unwrap().closed = true;
        self.queued.notify_one();
    }

    /// Everything queued, oldest first, once there is something; `None` once closed and
    /// empty. Cancel-safe: nothing is taken until it is returned.
    pub(super) async fn recv(&self) -> Option<VecDeque<T>> {
        loop {
            {
                let mut queue = self.queue.lock().unwrap();
                if !queue.items.is_empty() {
                    return Some(std::mem::take(&mut queue.items));
                }
                if queue.closed {
                    return None;
                }
            }
            // A send since the check left a permit: this returns at once.
            self.queued.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_come_in_order_and_the_inbox_ends_after_the_last_once_closed() {
        let inbox = Inbox::new();
        inbox.send(1);
        inbox.send(2);
        assert_eq!(inbox.recv().await, Some(VecDeque::from([1, 2])));
        inbox.send(3);
        inbox.close();
        inbox.send(4);
        assert_eq!(inbox.recv().await, Some(VecDeque::from([3])));
        assert_eq!(inbox.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_task_wakes_for_an_item_sent_later() {
        let inbox = std::sync::Arc::new(Inbox::new());
        let waiting = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.recv().await }
        });
        tokio::task::yield_now().await;
        inbox.send("late");
        assert_eq!(waiting.await.unwrap(), Some(VecDeque::from(["late"])));
    }
}
