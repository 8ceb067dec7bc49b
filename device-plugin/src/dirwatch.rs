//! Directory change notification: inotify on one directory, turned into a counter in a tokio
//! `watch` channel. Waiters re-check what they care about (an inode, a file's content) on every
//! bump, so a lost or coalesced event costs nothing; inotify overflow and a directory that does
//! not exist yet (retried every second) are bumps too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use inotify::{EventMask, Inotify, WatchMask};
use tokio::sync::watch;

/// Watches `dir` (inotify: entries created, deleted or moved) and bumps `events` on each change,
/// until `stop`. If the directory cannot be watched (it does not exist yet), it is retried every
/// second; every failure is also a bump, so waiters re-check the directory themselves.
pub async fn watch_dir(dir: PathBuf, events: watch::Sender<u64>, mut stop: watch::Receiver<bool>) {
    let bump = || events.send_modify(|n| *n = n.wrapping_add(1));
    loop {
        match dir_stream(&dir) {
            Ok(mut stream) => loop {
                tokio::select! {
                    ev = stream.next() => match ev {
                        Some(Ok(ev)) => {
                            bump();
                            if ev.mask.intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
                                break;
                            }
                        }
                        // overflow or the directory went away: re-check and re-watch
                        Some(Err(e)) => {
                            tracing::warn!(dir = %dir.display(), "inotify: {e}");
                            bump();
                            break;
                        }
                        None => {
                            bump();
                            break;
                        }
                    },
                    _ = stop.wait_for(|s| *s) => return,
                }
            },
            Err(e) => tracing::debug!(dir = %dir.display(), "cannot watch yet: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => bump(),
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn dir_stream(dir: &Path) -> std::io::Result<inotify::EventStream<Vec<u8>>> {
    let inotify = Inotify::init()?;
    inotify.watches().add(
        dir,
        WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::CLOSE_WRITE
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF,
    )?;
    inotify.into_event_stream(vec![0u8; 4096])
}
